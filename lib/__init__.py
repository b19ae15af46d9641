"""Small libraries Chorus wrote for itself, importing nothing of Chorus: ``json_safety``
(JSON a database can store) and ``sqlrows`` (hand-written SELECTs with the ORM's value
conversion). Apps, ``config`` and ``realtime`` may all use them."""

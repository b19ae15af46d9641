from functools import partial

from django.contrib import admin
from django.urls import path

from . import live_admin
from .models import Note, NoteGrant


class NoteGrantInline(admin.TabularInline):
    model = NoteGrant
    extra = 0
    autocomplete_fields = ("user",)


@admin.register(Note)
class NoteAdmin(admin.ModelAdmin):
    list_display = ("title", "owner", "updated_at", "created_at")
    search_fields = ("title",)
    autocomplete_fields = ("owner",)
    readonly_fields = ("yjs_state_size", "logged_updates", "created_at", "updated_at")
    exclude = ("yjs_state",)
    list_select_related = ("owner",)
    inlines = [NoteGrantInline]

    def get_urls(self):
        """The live admin's open documents (``notes.live_admin``) before the model's own."""
        view = partial(live_admin.open_documents, admin_site=self.admin_site)
        return [
            path("open/", self.admin_site.admin_view(view), name="notes_note_open"),
            *super().get_urls(),
        ]

    @admin.display(description="Yjs state (bytes)")
    def yjs_state_size(self, obj: Note) -> int:
        return len(obj.yjs_state or b"")

    @admin.display(description="Updates in the log (not yet merged by a save)")
    def logged_updates(self, obj: Note) -> int:
        return obj.updates.count()


@admin.register(NoteGrant)
class NoteGrantAdmin(admin.ModelAdmin):
    list_display = ("note", "principal_type", "user", "group", "permission")
    list_filter = ("principal_type", "permission")
    autocomplete_fields = ("note", "user")
    list_select_related = ("note", "user", "group")

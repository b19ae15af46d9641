"""Channel operations: every mutation, its permission checks and its live events; the queries
the API reads with.

Contract:
- Each mutation takes a ``ChannelAccess`` (or the caller for ``create_channel``), applies the
  rules of ``permissions`` (403 / 409), changes the database inside ``transaction.atomic()``,
  and announces the change with ``realtime.push``. push defers every send to
  ``transaction.on_commit``: a change that rolls back (here or in an enclosing atomic block)
  announces nothing, and the events of one mutation are sent in the order registered.
- Events go to the channel room ``channel.<id>`` as Socket.IO event ``events:channel`` with
  payload ``{"channel_id", "message_id"?, "data": {"type", "data"}, "user": {"id", "name"}}``
  (``user`` = who acted). Types and ``data``: see docs/channels.md.
- Membership moves live sockets: a new member's sockets join the room, a removed member's
  sockets leave it at once and get a ``member:remove`` notice.
- Private changes (mute / pin flags, read receipts) are the caller's own and emit nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from django.db import IntegrityError, transaction
from django.db.models import (
    Count,
    DateTimeField,
    Exists,
    IntegerField,
    OuterRef,
    Prefetch,
    Q,
    QuerySet,
    Subquery,
    Value,
)
from django.db.models.functions import Coalesce
from django.utils import timezone
from rest_framework import exceptions

from accounts.models import User
from config.api_errors import Conflict
from realtime import push

from .access import member_ids, memberships_in, memberships_of, readable_channels
from .models import Channel, ChannelMember, ChannelType, MemberRole, Message, Reaction
from .permissions import ChannelAccess
from .serializers import ChannelSerializer, MemberSerializer, MessageSerializer, user_ref

EVENT = "events:channel"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


# --- queries ----------------------------------------------------------------------------------


def _count(queryset: QuerySet, group_by: str) -> Coalesce:
    """``COUNT(*)`` of ``queryset`` (correlated by the caller's OuterRef) as an annotation."""
    counted = queryset.order_by().values(group_by).annotate(n=Count("pk")).values("n")
    return Coalesce(Subquery(counted, output_field=IntegerField()), Value(0))


def message_queryset() -> QuerySet[Message]:
    """Messages ready for ``MessageSerializer``: author, ordered reactions, ``reply_count``."""
    replies = Message.objects.filter(parent=OuterRef("pk"), deleted_at__isnull=True)
    return (
        Message.objects.select_related("author")
        .prefetch_related(Prefetch("reactions", Reaction.objects.order_by("created_at", "id")))
        .annotate(reply_count=_count(replies, "parent"))
    )


def channel_queryset(viewer: User | None = None) -> QuerySet[Channel]:
    """Channels ready for ``ChannelSerializer`` (``member_count``); with ``viewer``, also for
    ``ChannelForViewerSerializer`` (``viewer_memberships``, ``unread_count``)."""
    queryset = Channel.objects.select_related("owner").annotate(
        member_count=_count(memberships_in(OuterRef("pk")), "channel")
    )
    if viewer is None:
        return queryset
    mine = memberships_of(viewer)
    last_read = mine.filter(channel=OuterRef("pk")).values("last_read_at")[:1]
    queryset = queryset.annotate(
        viewer_last_read=Coalesce(
            Subquery(last_read, output_field=DateTimeField()),
            Value(_EPOCH, output_field=DateTimeField()),
        )
    )
    unread = Message.objects.filter(
        channel=OuterRef("pk"),
        deleted_at__isnull=True,
        created_at__gt=OuterRef("viewer_last_read"),
    ).exclude(author=viewer)
    return queryset.annotate(unread_count=_count(unread, "channel")).prefetch_related(
        Prefetch("members", queryset=mine, to_attr="viewer_memberships")
    )


def list_channels(user: User, *, joined_only: bool = False) -> QuerySet[Channel]:
    """The caller's channel list: channels they are an active member of, plus (unless
    ``joined_only``) public standard channels that are not archived. Pinned ones first, then
    by name. Admins may open any channel by id but their list is built the same way."""
    mine = memberships_of(user).filter(channel=OuterRef("pk"))
    listed = Q(Exists(mine))
    if not joined_only:
        listed |= Q(type=ChannelType.STANDARD, is_private=False, archived_at__isnull=True)
    ids = readable_channels(user).filter(listed).values("pk")
    pinned = Exists(mine.filter(is_pinned=True))
    return (
        channel_queryset(viewer=user)
        .filter(pk__in=ids)
        .annotate(viewer_pinned=pinned)
        .order_by("-viewer_pinned", "name", "id")
    )


def viewed_channel(access: ChannelAccess) -> Channel:
    """The channel of ``access`` loaded for ``ChannelForViewerSerializer``."""
    return channel_queryset(viewer=access.user).get(pk=access.channel.pk)


def active_members(access: ChannelAccess) -> QuerySet[ChannelMember]:
    return memberships_in(access.channel).select_related("user").order_by("joined_at", "id")


@dataclass(frozen=True, slots=True)
class Page:
    messages: list[Message]
    #: More messages exist beyond the page: after its last (``after`` given) or before its
    #: first (otherwise).
    has_more: bool


def _after(cursor: Message) -> Q:
    return Q(created_at__gt=cursor.created_at) | Q(created_at=cursor.created_at, id__gt=cursor.id)


def _before(cursor: Message) -> Q:
    return Q(created_at__lt=cursor.created_at) | Q(created_at=cursor.created_at, id__lt=cursor.id)


def message_page(
    access: ChannelAccess,
    *,
    after: Message | None = None,
    before: Message | None = None,
    limit: int,
    thread: Message | None = None,
    top_level: bool = False,
) -> Page:
    """A page of the channel's messages in ``(created_at, id)`` order, always ascending.

    ``after``: the first ``limit`` messages strictly after it (and strictly before ``before``
    if given too). Otherwise the last ``limit`` messages strictly before ``before`` (or the
    newest ``limit`` without a cursor). ``thread``: only its replies; ``top_level``: only
    messages without a parent; neither: every message, replies included, so ``after`` catches
    up on everything. Deleted messages are included as tombstones.
    """
    queryset = message_queryset().filter(channel=access.channel)
    if thread is not None:
        queryset = queryset.filter(parent=thread)
    elif top_level:
        queryset = queryset.filter(parent__isnull=True)
    if after is not None:
        queryset = queryset.filter(_after(after))
    if before is not None:
        queryset = queryset.filter(_before(before))
    if after is not None:
        rows = list(queryset.order_by("created_at", "id")[: limit + 1])
        return Page(rows[:limit], len(rows) > limit)
    rows = list(queryset.order_by("-created_at", "-id")[: limit + 1])
    return Page(rows[:limit][::-1], len(rows) > limit)


def channel_message(access: ChannelAccess, message_id: UUID | str) -> Message:
    """A message of the channel, loaded for ``MessageSerializer``; 404 if not in it."""
    message = message_queryset().filter(channel=access.channel, pk=message_id).first()
    if message is None:
        raise exceptions.NotFound("No such message in this channel.")
    return message


# --- events -----------------------------------------------------------------------------------


def channel_event(
    channel_id: UUID | str, kind: str, data: Any, actor: User, message_id: UUID | str | None = None
) -> dict:
    """The ``events:channel`` payload (``message_id`` only for message events)."""
    payload: dict[str, Any] = {"channel_id": str(channel_id)}
    if message_id is not None:
        payload["message_id"] = str(message_id)
    payload["data"] = {"type": kind, "data": data}
    payload["user"] = user_ref(actor)
    return payload


def _emit(channel_id: UUID | str, kind: str, data: Any, actor: User, message_id=None) -> None:
    push.emit_to_channel(
        channel_id, EVENT, channel_event(channel_id, kind, data, actor, message_id)
    )


def _channel_data(channel_id: UUID | str) -> dict:
    return dict(ChannelSerializer(channel_queryset().get(pk=channel_id)).data)


def _message_data(message: Message) -> dict:
    return dict(MessageSerializer(message).data)


def _member_data(membership: ChannelMember) -> dict:
    return dict(MemberSerializer(membership).data)


def _join_room(user_id: UUID | str, channel_id: UUID | str, notice: dict | None = None) -> None:
    """The user's sockets join the room, then get ``notice`` (see push.add_user_to_room)."""
    push.add_user_to_room(
        user_id, push.channel_room(channel_id), notice=(EVENT, notice) if notice else None
    )


def _leave_room(user_id: UUID | str, channel_id: UUID | str, notice: dict | None = None) -> None:
    push.remove_user_from_room(
        user_id, push.channel_room(channel_id), notice=(EVENT, notice) if notice else None
    )


# --- channels ---------------------------------------------------------------------------------


def dm_key(first: object, second: object) -> str:
    """The ``Channel.dm_key`` of a pair: both user ids, sorted, joined by ``:``."""
    return ":".join(sorted((str(first), str(second))))


def create_channel(
    creator: User,
    *,
    type: str,
    name: str,
    description: str,
    is_private: bool,
    data: dict,
    members: list[User],
) -> tuple[Channel, bool]:
    """Create a channel owned by ``creator`` with ``members`` as plain members; returns
    ``(channel, created)``. A dm between two users exists once: asking again returns the
    existing one with ``created`` False (and emits nothing). Emits ``channel:created``."""
    key = dm_key(creator.pk, members[0].pk) if type == ChannelType.DM else None
    if key is not None:
        existing = Channel.objects.filter(dm_key=key).first()
        if existing is not None:
            return existing, False
        name = ", ".join(sorted(u.display_name for u in (creator, *members)))
    try:
        with transaction.atomic():
            channel = Channel.objects.create(
                type=type,
                name=name,
                description=description,
                is_private=is_private,
                owner=creator,
                dm_key=key,
                data=data,
            )
            ChannelMember.objects.create(channel=channel, user=creator, role=MemberRole.OWNER)
            ChannelMember.objects.bulk_create(
                ChannelMember(channel=channel, user=user, role=MemberRole.MEMBER)
                for user in members
            )
            # Nobody's sockets are in the new room yet: each member hears of it as a notice
            # sent after their join (a room emit could overtake the joins).
            created = channel_event(
                channel.pk, "channel:created", _channel_data(channel.pk), creator
            )
            for user in (creator, *members):
                _join_room(user.pk, channel.pk, created)
    except IntegrityError:
        if key is None:
            raise
        return Channel.objects.get(dm_key=key), False  # a concurrent request created it
    return channel, True


def update_channel(access: ChannelAccess, changes: dict) -> Channel:
    """Managers update name, description, is_private, data, and archive (``archived``
    True/False). While archived only ``archived: false`` (with other changes) is accepted.
    Unarchiving puts the members' sockets back into the room. Emits ``channel:update``."""
    access.require_manager()
    changes = dict(changes)
    archived = changes.pop("archived", None)
    if access.is_archived and archived is not False:
        access.require_open()
    with transaction.atomic():
        channel = Channel.objects.select_for_update().get(pk=access.channel.pk)
        for field, value in changes.items():
            setattr(channel, field, value)
        unarchived = archived is False and channel.archived_at is not None
        if archived is True and channel.archived_at is None:
            channel.archived_at = timezone.now()
        elif unarchived:
            channel.archived_at = None
        channel.save()
        update = channel_event(channel.pk, "channel:update", _channel_data(channel.pk), access.user)
        if unarchived:  # sockets come back into the room and are told after joining
            for user_id in member_ids(channel.pk):
                _join_room(user_id, channel.pk, update)
        elif archived is True:  # sockets leave the room (no typing, no events) and are told
            for user_id in member_ids(channel.pk):
                _leave_room(user_id, channel.pk, update)
        else:
            push.emit_to_channel(channel.pk, EVENT, update)
    return channel


def delete_channel(access: ChannelAccess) -> None:
    """The owner (or an admin) deletes the channel with its messages. Emits ``channel:delete``
    ``{"id"}`` to the room first, then takes every member's sockets out of it."""
    access.require_owner()
    channel_id = access.channel.pk
    with transaction.atomic():
        were_members = member_ids(channel_id)
        Channel.objects.filter(pk=channel_id).delete()
        _emit(channel_id, "channel:delete", {"id": str(channel_id)}, access.user)
        for user_id in were_members:
            _leave_room(user_id, channel_id)


# --- members ----------------------------------------------------------------------------------


def _target_membership(access: ChannelAccess, user_id: UUID | str) -> ChannelMember:
    membership = (
        ChannelMember.objects.select_related("user")
        .filter(channel=access.channel, user_id=user_id, is_active=True)
        .first()
    )
    if membership is None:
        raise exceptions.NotFound("No such member.")
    return membership


def _require_mutable_members(access: ChannelAccess) -> None:
    access.require_open()
    if access.channel.type == ChannelType.DM:
        raise Conflict("A dm's members cannot change.")


def add_member(access: ChannelAccess, user: User, role: str) -> ChannelMember:
    """Managers add anyone; any signed-in user may join a public standard channel themselves
    (as a plain member). Re-adding a removed member reactivates them. 409 if already active.
    Their sockets join the room; emits ``member:add``."""
    self_join = (
        user.pk == access.user.pk
        and role == MemberRole.MEMBER
        and access.channel.type == ChannelType.STANDARD
        and not access.channel.is_private
    )
    if not self_join:
        access.require_manager()
    _require_mutable_members(access)
    now = timezone.now()
    with transaction.atomic():
        membership = (
            ChannelMember.objects.select_for_update()
            .filter(channel=access.channel, user=user)
            .first()
        )
        if membership is not None and membership.is_active:
            raise Conflict("This user is already a member.")
        if membership is None:
            try:
                with transaction.atomic():
                    membership = ChannelMember.objects.create(
                        channel=access.channel, user=user, role=role
                    )
            except IntegrityError:
                raise Conflict("This user is already a member.") from None
        else:
            membership.role = role
            membership.is_active = True
            membership.left_at = None
            membership.joined_at = now
            membership.is_muted = membership.is_pinned = False
            membership.last_read_at = None
            membership.save()
        # Members already in the room first; then the new member joins and is told, so it
        # gets member:add exactly once whatever the order of delivery across instances.
        _emit(access.channel.pk, "member:add", _member_data(membership), access.user)
        _join_room(
            user.pk,
            access.channel.pk,
            channel_event(access.channel.pk, "member:add", _member_data(membership), access.user),
        )
    return membership


def update_member(access: ChannelAccess, user_id: UUID | str, changes: dict) -> ChannelMember:
    """``is_muted`` / ``is_pinned``: the caller's own flags only (403 on someone else's); no
    event. ``role``: managers, never on the owner (403), not in a dm or an archived channel
    (409); emits ``member:update``."""
    membership = _target_membership(access, user_id)
    flags = {k: v for k, v in changes.items() if k in ("is_muted", "is_pinned")}
    role = changes.get("role")
    if flags and membership.user_id != access.user.pk:
        raise exceptions.PermissionDenied("Only the member may change their mute and pin flags.")
    if role is not None:
        access.require_manager()
        if membership.role == MemberRole.OWNER:
            raise exceptions.PermissionDenied("The owner's role cannot be changed.")
        _require_mutable_members(access)
    with transaction.atomic():
        for field, value in flags.items():
            setattr(membership, field, value)
        role_changed = role is not None and role != membership.role
        if role is not None:
            membership.role = role
        membership.save(update_fields=[*flags, "role", "updated_at"])
        if role_changed:
            _emit(access.channel.pk, "member:update", _member_data(membership), access.user)
    return membership


def remove_member(access: ChannelAccess, user_id: UUID | str) -> None:
    """A member leaves (any member but the owner), or a manager removes a member (never the
    owner: 403). Not in a dm or an archived channel (409). The membership becomes inactive
    (``left_at`` set) and loses access. Their sockets leave the room at once and get a
    ``member:remove`` notice; the room gets the same event."""
    membership = _target_membership(access, user_id)
    leaving = membership.user_id == access.user.pk
    if membership.role == MemberRole.OWNER:
        if leaving:
            raise Conflict("The owner cannot leave the channel; delete it instead.")
        raise exceptions.PermissionDenied("The owner cannot be removed.")
    if not leaving:
        access.require_manager()
    _require_mutable_members(access)
    with transaction.atomic():
        membership.is_active = False
        membership.left_at = timezone.now()
        membership.save(update_fields=["is_active", "left_at", "updated_at"])
        notice = channel_event(
            access.channel.pk,
            "member:remove",
            {**_member_data(membership), "left": leaving},
            access.user,
        )
        # Leave first: the removed user's sockets are out of the room before the room event,
        # so they get exactly one member:remove (the notice).
        _leave_room(membership.user_id, access.channel.pk, notice)
        push.emit_to_channel(access.channel.pk, EVENT, notice)


def mark_read(access: ChannelAccess) -> ChannelMember:
    """Set the caller's ``last_read_at`` to now (members only; allowed while archived)."""
    membership = access.require_member()
    membership.last_read_at = timezone.now()
    membership.save(update_fields=["last_read_at", "updated_at"])
    return membership


# --- messages ---------------------------------------------------------------------------------


def post_message(
    access: ChannelAccess, *, content: str, data: dict, parent: Message | None
) -> Message:
    """Members post (409 while archived). Emits ``message``; a reply (``parent`` set) also
    emits ``message:reply`` with ``message_id`` = the parent and the parent as ``data``
    (its ``reply_count`` updated)."""
    access.require_member()
    access.require_open()
    with transaction.atomic():
        message = Message.objects.create(
            channel=access.channel, author=access.user, parent=parent, content=content, data=data
        )
        message = channel_message(access, message.pk)
        _emit(access.channel.pk, "message", _message_data(message), access.user, message.pk)
        if parent is not None:
            _emit(
                access.channel.pk,
                "message:reply",
                _message_data(channel_message(access, parent.pk)),
                access.user,
                parent.pk,
            )
    return message


def _require_live(message: Message) -> None:
    if message.deleted_at is not None:
        raise Conflict("This message was deleted.")


def edit_message(access: ChannelAccess, message_id: UUID | str, changes: dict) -> Message:
    """The author (an active member) edits content / data; sets ``edited_at``. 409 while
    archived or once deleted. Emits ``message:update``."""
    message = channel_message(access, message_id)
    if message.author_id is None or message.author_id != access.user.pk:
        raise exceptions.PermissionDenied("Only the author may edit a message.")
    access.require_member()
    access.require_open()
    _require_live(message)
    with transaction.atomic():
        for field, value in changes.items():
            setattr(message, field, value)
        message.edited_at = timezone.now()
        message.save(update_fields=[*changes, "edited_at", "updated_at"])
        _emit(access.channel.pk, "message:update", _message_data(message), access.user, message.pk)
    return message


def delete_message(access: ChannelAccess, message_id: UUID | str) -> Message:
    """The author (an active member), a manager or an admin deletes: soft — ``deleted_at`` set,
    content and data blanked, reactions dropped; replies stay. 409 while archived or once
    deleted. Emits ``message:delete`` with the tombstone."""
    message = channel_message(access, message_id)
    own = message.author_id is not None and message.author_id == access.user.pk
    if not access.is_manager and not (own and access.is_member):
        raise exceptions.PermissionDenied("Only the author or a manager may delete a message.")
    access.require_open()
    _require_live(message)
    with transaction.atomic():
        message.deleted_at = timezone.now()
        message.content = ""
        message.data = {}
        message.save(update_fields=["deleted_at", "content", "data", "updated_at"])
        message.reactions.all().delete()
        message = channel_message(access, message.pk)
        _emit(access.channel.pk, "message:delete", _message_data(message), access.user, message.pk)
    return message


def _react(
    access: ChannelAccess, message_id: UUID | str, name: str, add: bool
) -> tuple[Message, bool]:
    access.require_member()
    access.require_open()
    message = channel_message(access, message_id)
    _require_live(message)
    with transaction.atomic():
        if add:
            try:
                with transaction.atomic():
                    _, changed = Reaction.objects.get_or_create(
                        message=message, user=access.user, name=name
                    )
            except IntegrityError:
                changed = False  # a concurrent identical request won
        else:
            deleted, _ = Reaction.objects.filter(
                message=message, user=access.user, name=name
            ).delete()
            changed = deleted > 0
        if not changed:
            return message, False
        message = channel_message(access, message.pk)
        kind = "message:reaction:add" if add else "message:reaction:remove"
        _emit(
            access.channel.pk,
            kind,
            {**_message_data(message), "name": name},
            access.user,
            message.pk,
        )
    return message, True


def add_reaction(access: ChannelAccess, message_id: UUID | str, name: str) -> tuple[Message, bool]:
    """Members react (409 while archived or on a deleted message). Returns ``(message,
    added)``; adding a reaction one already made changes and emits nothing. Emits
    ``message:reaction:add`` (data: the message plus ``name``)."""
    return _react(access, message_id, name, add=True)


def remove_reaction(
    access: ChannelAccess, message_id: UUID | str, name: str
) -> tuple[Message, bool]:
    """Remove the caller's reaction ``name``; removing one not made changes and emits nothing.
    Emits ``message:reaction:remove`` (data: the message plus ``name``)."""
    return _react(access, message_id, name, add=False)

"""Who may do what in a channel: the rules every REST endpoint and service applies.

Contract:
- ``channel_access(user, channel_id)`` resolves a channel the user may *see* or raises 404.
  Visibility is ``access.readable_channels`` (admins: everything; group and dm: active members;
  standard: every signed-in user unless ``is_private``), narrowed by one rule: an archived
  channel is visible to its active members (and admins) only. A channel the caller may not see
  is indistinguishable from one that does not exist (404, never 403).
- On a visible channel, a refused action is 403 (``forbidden``) and an action on an archived
  channel that would change it is 409 (``conflict``).
- Roles: the owner and managers *manage* (update, archive, members); only the owner deletes
  the channel. A site admin (``role == admin``) may do everything a manager and the owner may,
  without being a member; posting and reacting still need an active membership.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from rest_framework import exceptions

from accounts.models import Role, User
from config.api_errors import Conflict

from .access import membership, readable_channels
from .models import Channel, ChannelMember, MemberRole

MANAGING_ROLES = (MemberRole.OWNER, MemberRole.MANAGER)


@dataclass(frozen=True, slots=True)
class ChannelAccess:
    """The caller, a channel they may see, and their active membership (None if not a member)."""

    user: User
    channel: Channel
    membership: ChannelMember | None

    @property
    def is_admin(self) -> bool:
        return self.user.role == Role.ADMIN

    @property
    def is_member(self) -> bool:
        return self.membership is not None

    @property
    def is_manager(self) -> bool:
        """Owner, manager, or site admin."""
        if self.is_admin:
            return True
        return self.membership is not None and self.membership.role in MANAGING_ROLES

    @property
    def is_owner(self) -> bool:
        """The channel's owner, or a site admin."""
        return self.is_admin or (
            self.channel.owner_id is not None and self.channel.owner_id == self.user.pk
        )

    @property
    def is_archived(self) -> bool:
        return self.channel.archived_at is not None

    def require_member(self) -> ChannelMember:
        if self.membership is None:
            raise exceptions.PermissionDenied("You are not a member of this channel.")
        return self.membership

    def require_manager(self) -> None:
        if not self.is_manager:
            raise exceptions.PermissionDenied("Only the channel's owner and managers may do this.")

    def require_owner(self) -> None:
        if not self.is_owner:
            raise exceptions.PermissionDenied("Only the channel's owner may do this.")

    def require_open(self) -> None:
        """409 when the channel is archived: it is read-only until unarchived."""
        if self.is_archived:
            raise Conflict("This channel is archived and read-only; unarchive it first.")


def channel_access(user: User, channel_id: UUID | str) -> ChannelAccess:
    """The caller's access to a channel they may see; 404 otherwise (see module docstring)."""
    channel = readable_channels(user).select_related("owner").filter(pk=channel_id).first()
    if channel is None:
        raise exceptions.NotFound("No such channel.")
    access = ChannelAccess(user=user, channel=channel, membership=membership(user, channel))
    if access.is_archived and not access.is_member and not access.is_admin:
        raise exceptions.NotFound("No such channel.")
    return access

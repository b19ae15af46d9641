from django.contrib import admin

from .models import Channel, ChannelMember, Message, Reaction


class ChannelMemberInline(admin.TabularInline):
    model = ChannelMember
    extra = 0
    autocomplete_fields = ("user",)
    readonly_fields = ("joined_at",)


@admin.register(Channel)
class ChannelAdmin(admin.ModelAdmin):
    list_display = ("name", "type", "is_private", "owner", "archived_at", "created_at")
    list_filter = ("type", "is_private")
    search_fields = ("name", "description")
    autocomplete_fields = ("owner",)
    inlines = [ChannelMemberInline]


class ReactionInline(admin.TabularInline):
    model = Reaction
    extra = 0
    autocomplete_fields = ("user",)


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ("short_content", "channel", "author", "created_at", "edited_at", "deleted_at")
    list_filter = ("channel",)
    search_fields = ("content",)
    raw_id_fields = ("parent",)
    autocomplete_fields = ("author", "channel")
    list_select_related = ("channel", "author")
    inlines = [ReactionInline]

    @admin.display(description="content")
    def short_content(self, obj: Message) -> str:
        return obj.content[:60]


@admin.register(ChannelMember)
class ChannelMemberAdmin(admin.ModelAdmin):
    list_display = ("channel", "user", "role", "is_active", "last_read_at")
    list_filter = ("role", "is_active")
    autocomplete_fields = ("channel", "user")
    list_select_related = ("channel", "user")


@admin.register(Reaction)
class ReactionAdmin(admin.ModelAdmin):
    list_display = ("name", "message", "user", "created_at")
    autocomplete_fields = ("user",)
    raw_id_fields = ("message",)
    list_select_related = ("user", "message")

from functools import partial

from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.db import models, transaction
from django.urls import path

from . import live_admin
from .models import RevokedToken, User
from .tokens import revoke_all_tokens


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    list_display = ("username", "name", "email", "role", "is_active", "last_active_at")
    list_filter = ("role", "is_active", "is_staff", "is_superuser")
    search_fields = ("username", "name", "email")
    ordering = ("username",)
    readonly_fields = ("last_active_at", "tokens_valid_after", "created_at", "updated_at")
    # A profile image address typed without a scheme means https (Django 6's default).
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    fieldsets = (
        *(DjangoUserAdmin.fieldsets or ()),  # Django's (the stubs allow None)
        (
            "Chorus",
            {
                "fields": (
                    "name",
                    "role",
                    "last_active_at",
                    "tokens_valid_after",
                    "settings",
                    "created_at",
                    "updated_at",
                )
            },
        ),
        ("Private profile", {"fields": ("date_of_birth", "bio", "gender", "profile_image_url")}),
    )
    actions = ["revoke_all_sessions"]

    def get_urls(self):
        """The live admin's pages (``accounts.live_admin``) before the model's own."""
        site = self.admin_site
        return [
            path(
                "online/",
                site.admin_view(partial(live_admin.online, admin_site=site)),
                name="accounts_user_online",
            ),
            path(
                "online/act/",
                site.admin_view(live_admin.act),
                name="accounts_user_online_act",
            ),
            *super().get_urls(),
        ]

    @admin.action(description="Revoke all sessions (void tokens, disconnect sockets)")
    def revoke_all_sessions(self, request, queryset):
        with transaction.atomic():
            for user in queryset:
                revoke_all_tokens(user)
        self.message_user(
            request, f"Revoked all sessions of {queryset.count()} user(s).", messages.SUCCESS
        )


@admin.register(RevokedToken)
class RevokedTokenAdmin(admin.ModelAdmin):
    list_display = ("jti", "user", "expires_at", "created_at")
    search_fields = ("jti", "user__username")
    readonly_fields = ("jti", "user", "expires_at", "created_at", "updated_at")
    list_select_related = ("user",)

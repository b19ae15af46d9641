"""API keys in the admin: made with "add" (the key is shown once, in the success message),
listed by prefix, scopes and state, revoked with an action. The hash is never shown."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from .models import ApiKey, Scope


class ApiKeyForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(
        choices=Scope.choices, widget=forms.CheckboxSelectMultiple, required=True
    )

    class Meta:
        model = ApiKey
        fields = ("name", "scopes")


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    form = ApiKeyForm
    list_display = ("name", "prefix", "scope_list", "state", "created_at", "last_used_at")
    list_filter = ("revoked_at",)
    search_fields = ("name", "prefix")
    readonly_fields = ("prefix", "created_at", "created_by", "last_used_at", "revoked_at")
    actions = ["revoke"]

    def get_fields(self, request, obj=None):
        if obj is None:
            return ("name", "scopes")
        return ("name", "scopes", *self.readonly_fields)

    @admin.display(description="scopes")
    def scope_list(self, obj: ApiKey) -> str:
        return ", ".join(obj.scopes)

    @admin.display(description="state")
    def state(self, obj: ApiKey) -> str:
        return "active" if obj.active else "revoked"

    def save_model(self, request: HttpRequest, obj: ApiKey, form, change: bool) -> None:
        obj.scopes = sorted(set(obj.scopes))
        key = None
        if not change:
            key = obj.new_secret()
            if request.user.is_authenticated:
                obj.created_by = request.user
        super().save_model(request, obj, form, change)
        if key is not None:
            self.message_user(
                request,
                f"The new key for “{obj.name}” is {key} — copy it now: it is shown this once "
                "and cannot be read back (only its hash is stored).",
                messages.WARNING,
            )

    @admin.action(description="Revoke the selected keys")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        revoked = sum(1 for api_key in queryset if api_key.revoke())
        self.message_user(request, f"Revoked {revoked} key(s).", messages.SUCCESS)

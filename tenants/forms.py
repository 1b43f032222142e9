from django import forms

from mailhost.validation import in_utc
from tenants.models import Role


class InviteForm(forms.Form):
    email = forms.EmailField(label="E-mail address")
    role = forms.ChoiceField(
        choices=Role.choices,
        initial=Role.VIEWER,
        help_text="Owners manage members; admins change mail settings; viewers only look.",
    )


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)


class TokenForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="What uses it, e.g. “billing sync”.")
    read_only = forms.BooleanField(label="Read-only", required=False)
    expires_in_days = forms.IntegerField(
        label="Expires after (days)",
        required=False,
        min_value=1,
        max_value=3650,
        help_text="Empty: never expires.",
    )


class UtcDateTimeField(forms.DateTimeField):
    """A date-time (ISO 8601, with or without an offset) compared in UTC, within years 1–9999."""

    widget = forms.DateTimeInput(attrs={"type": "datetime-local"})

    def clean(self, value):
        cleaned = super().clean(value)
        try:
            return in_utc(cleaned) if cleaned is not None else None
        except ValueError as exc:
            raise forms.ValidationError(str(exc).capitalize()) from None


class AuditFilterForm(forms.Form):
    action = forms.CharField(required=False, help_text="e.g. mailbox or mailbox.delete")
    target = forms.CharField(required=False)
    actor = forms.CharField(label="Who", required=False)
    since = UtcDateTimeField(label="From", required=False)
    until = UtcDateTimeField(label="Before", required=False)


class OrganisationForm(forms.Form):
    name = forms.CharField(max_length=200, help_text="The client's name, e.g. “Acme Ltd”.")
    slug = forms.SlugField(
        max_length=50, help_text="Short id in addresses and the API: lower-case, e.g. acme."
    )
    admin_email = forms.EmailField(
        label="First admin's e-mail", required=False,
        help_text="They get an invitation to sign in and manage this organisation.",
    )
    admin_role = forms.ChoiceField(
        label="Their role", choices=[(Role.OWNER, "Owner"), (Role.ADMIN, "Admin")],
        initial=Role.OWNER, help_text="Owners also manage members.",
    )

from django import forms

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


class AuditFilterForm(forms.Form):
    action = forms.CharField(required=False, help_text="e.g. mailbox or mailbox.delete")
    target = forms.CharField(required=False)
    actor = forms.CharField(label="Who", required=False)


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

"""Forms for the mail-admin and mailbox pages. They parse input into types; the services
validate it (names, limits, conflicts) and their errors are shown on these fields."""

from django import forms

from mailboxes.models import DomainStatus, MailboxStatus


class DomainAddForm(forms.Form):
    name = forms.CharField(
        label="Domain name", max_length=300,
        help_text="The domain people's addresses end in, e.g. example.com. "
        "Internationalised names are fine.",
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )
    max_mailboxes = forms.IntegerField(
        label="Mailbox limit", required=False, min_value=0, help_text="Leave empty for no limit."
    )
    default_quota_mb = forms.IntegerField(
        label="Default quota (MB)", required=False, min_value=1,
        help_text="For new mailboxes; each mailbox can differ.",
    )

    node = forms.ChoiceField(
        label="Mail node", required=False,
        help_text="The node its mail lives on. Automatic: the node with the fewest mailboxes.",
    )

    def __init__(self, *args, staff: bool = False, node_choices=(), **kwargs):
        super().__init__(*args, **kwargs)
        if not staff:  # the mail service's staff set limits and nodes, not the organisation
            del self.fields["max_mailboxes"]
            del self.fields["node"]
        else:
            self.fields["node"].choices = [("", "Automatic (least loaded)"), *node_choices]


class DomainEditForm(forms.Form):
    status = forms.ChoiceField(choices=DomainStatus.choices)
    max_mailboxes = forms.IntegerField(
        label="Mailbox limit", required=False, min_value=0, help_text="Leave empty for no limit."
    )
    default_quota_mb = forms.IntegerField(label="Default quota (MB)", min_value=1)
    role_target = forms.CharField(
        label="postmaster@ and abuse@ go to", max_length=254, required=False,
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
        help_text="A mailbox or alias of yours. Empty: the automatic choice (your first "
        "admin's mailbox if it is hosted here, else the mail service's operator mailbox).",
    )

    def __init__(self, *args, staff: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        if not staff:
            # Shown, not editable: a changed value still reaches the service, which answers 403.
            field = self.fields["max_mailboxes"]
            field.widget.attrs["readonly"] = True
            field.help_text = "Set by the mail service's staff; ask them to change it."


class MailboxCreateForm(forms.Form):
    local_part = forms.CharField(
        label="Address", max_length=64, help_text="The part before the @.",
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )
    domain = forms.ChoiceField(label="Domain")
    display_name = forms.CharField(label="Name", max_length=200, required=False)
    quota_mb = forms.IntegerField(
        label="Quota (MB)", required=False, min_value=1, help_text="Empty: the domain's default."
    )
    password = forms.CharField(
        label="Password", required=False, strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text="Leave empty to generate a strong one, shown once.",
    )

    def __init__(self, *args, domains=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["domain"].choices = [(d.name, d.display_name) for d in domains]


class MailboxEditForm(forms.Form):
    display_name = forms.CharField(label="Name", max_length=200, required=False)
    quota_mb = forms.IntegerField(label="Quota (MB)", min_value=1)


class MailboxPasswordForm(forms.Form):
    password = forms.CharField(
        label="New password", required=False, strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text="Leave empty to generate a strong one, shown once.",
    )


class MailboxStatusForm(forms.Form):
    status = forms.ChoiceField(choices=MailboxStatus.choices, widget=forms.HiddenInput)


class ForwardingForm(forms.Form):
    forward_to = forms.CharField(
        label="Forward to", required=False,
        widget=forms.Textarea(attrs={"rows": 3, "spellcheck": "false"}),
        help_text="One address per line. Leave empty to stop forwarding.",
    )
    keep_copy = forms.BooleanField(
        label="Keep a copy in this mailbox", required=False, initial=True
    )


class VacationForm(forms.Form):
    enabled = forms.BooleanField(label="Send an automatic reply", required=False)
    subject = forms.CharField(label="Subject", max_length=200, required=False)
    body = forms.CharField(
        label="Message", required=False, max_length=4000, widget=forms.Textarea(attrs={"rows": 6}),
        help_text="Each sender gets it at most once a day.",
    )
    start = forms.DateField(
        label="First day", required=False, widget=forms.DateInput(attrs={"type": "date"}),
        help_text="Empty: from now.",
    )
    end = forms.DateField(
        label="Last day", required=False, widget=forms.DateInput(attrs={"type": "date"}),
        help_text="Empty: until you turn it off.",
    )


class AppPasswordForm(forms.Form):
    name = forms.CharField(
        label="Device", max_length=100, help_text="e.g. “Anna's iPhone” — to recognise it later."
    )


class PortalLoginForm(forms.Form):
    address = forms.CharField(
        label="E-mail address", max_length=254,
        widget=forms.EmailInput(attrs={"autocomplete": "username", "autofocus": True}),
    )
    password = forms.CharField(
        label="Password", strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
    )


class PortalPasswordForm(forms.Form):
    current_password = forms.CharField(
        label="Current password", strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
    )
    new_password = forms.CharField(
        label="New password", strip=False, help_text="At least 10 characters.",
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )
    confirm_password = forms.CharField(
        label="New password again", strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )

    def clean(self):
        data = super().clean()
        if data.get("new_password") and data.get("new_password") != data.get("confirm_password"):
            self.add_error("confirm_password", "The two new passwords differ.")
        return data


class AliasForm(forms.Form):
    local_part = forms.CharField(
        label="Address", max_length=64, required=False,
        help_text="The part before the @. Leave empty (or *) for a catch-all.",
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )
    domain = forms.ChoiceField(label="Domain")
    destinations = forms.CharField(
        label="Deliver to", widget=forms.Textarea(attrs={"rows": 3, "spellcheck": "false"}),
        help_text="One address per line: mailboxes here or anywhere else.",
    )

    def __init__(self, *args, domains=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["domain"].choices = [(d.name, d.display_name) for d in domains]


class AliasEditForm(forms.Form):
    destinations = forms.CharField(
        label="Deliver to", widget=forms.Textarea(attrs={"rows": 3, "spellcheck": "false"}),
        help_text="One address per line.",
    )
    active = forms.BooleanField(label="Active", required=False)


class ImportForm(forms.Form):
    file = forms.FileField(
        label="CSV file",
        help_text="UTF-8, first line: address,display_name,quota_mb,password "
        "(only address is required; an empty password is generated).",
        widget=forms.ClearableFileInput(attrs={"accept": ".csv,text/csv"}),
    )


def lines(raw: str) -> list[str]:
    """Addresses from a textarea: one per line (commas and spaces also separate)."""
    return [part for part in (raw or "").replace(",", "\n").split() if part]

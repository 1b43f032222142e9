from django import forms

from mailhost.backend.tls_policy import POLICY_LEVELS

LEVEL_LABELS = {
    "secure": "secure — a certificate that verifies for the MX name (trusted CA)",
    "dane-only": "dane-only — DNSSEC-signed TLSA records required",
    "dane": "dane — TLSA when published, else opportunistic",
    "encrypt": "encrypt — TLS required, not authenticated",
    "may": "may — opportunistic TLS",
}


class TlsPolicyForm(forms.Form):
    domain = forms.CharField(max_length=253, label="Recipient domain")
    level = forms.ChoiceField(choices=[(v, LEVEL_LABELS[v]) for v in POLICY_LEVELS],
                              label="Demand")
    note = forms.CharField(max_length=200, required=False, label="Note (why)")

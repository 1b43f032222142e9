"""What the apps' Django admin classes share."""

from django.contrib import admin

from mailhost.validation import validate_one_line


class OneLineFieldsAdmin(admin.ModelAdmin):
    """Staff edit rows here without the services, so the services' one-line rule for names
    (no control characters, line separators or bidirectional overrides) is added to the form."""

    one_line_fields: tuple[str, ...] = ()

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        field = super().formfield_for_dbfield(db_field, request, **kwargs)
        if field is not None and db_field.name in self.one_line_fields:
            field.validators.append(validate_one_line)
        return field

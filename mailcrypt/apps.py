from django.apps import AppConfig


class MailcryptConfig(AppConfig):
    name = "mailcrypt"
    verbose_name = "Encryption at rest"

    def ready(self) -> None:
        from mailcrypt.snapshot import mail_crypt_keys
        from nodes import snapshot as node_state

        # What a node is rendered from: this app's part (nodes/ imports no app).
        node_state.register("mail_crypt_keys", mail_crypt_keys)

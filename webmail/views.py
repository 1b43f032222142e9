"""/mailbox/webmail/: the signed-in holder opens webmail without typing the password again."""

import time

from django.conf import settings
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from mailboxes.portal_views import SESSION_LOGIN_AT, WEBMAIL_SESSION, portal_page
from webmail import services


@portal_page  # first: anyone not signed in is sent to the sign-in page, whatever the method
@require_POST
def open_webmail(request):
    session = request.session
    if not session.get(WEBMAIL_SESSION):
        session[WEBMAIL_SESSION] = services.new_portal_session_id()
    # The webmail session lives no longer than this portal session may.
    expires = session.get(SESSION_LOGIN_AT, time.time()) + settings.MAILBOX_PORTAL_MAX_SECONDS
    token = services.webmail_sso_start(
        actor=request.actor, mailbox=request.mailbox, portal_session=session[WEBMAIL_SESSION],
        session_expires=expires,
    )
    response = redirect(services.webmail_sso_url(mailbox=request.mailbox, token=token))
    response["Referrer-Policy"] = "no-referrer"
    return response

"""The GraphQL mutation sends exactly like the REST call: same service, tokens, checks."""

import pytest

from delivery.models import Message
from tests.api.conftest import make_token
from tests.delivery.support import internet_address
from tests.stack import wait_for

pytestmark = pytest.mark.stack

SEND = """mutation Send($from: String!, $to: [String!]!, $key: String) {
  sendEmail(from: $from, to: $to, subject: "Hello", textBody: "Hi.", htmlBody: "<p>Hi.</p>",
            idempotencyKey: $key) { id status suppressed recipients { address status } }
}"""


def graphql(client, token, query, variables=None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = client.post("/graphql", {"query": query, "variables": variables or {}},
                           content_type="application/json", headers=headers)
    assert response.status_code == 200, response.content
    return response.json()


def test_it_sends_like_the_rest_call(sender, internet, client):
    hosted, rest = sender()
    to = internet_address("gql")
    variables = {"from": hosted.address("news"), "to": [to], "key": "gql-1"}
    sent = graphql(client, rest.token, SEND, variables)["data"]["sendEmail"]
    assert sent["status"] == "queued" and sent["recipients"] == [{"address": to,
                                                                 "status": "queued"}]
    again = graphql(client, rest.token, SEND, variables)["data"]["sendEmail"]
    assert again["id"] == sent["id"]  # the same Idempotency-Key semantics
    (received,) = wait_for(lambda: internet.received_by(to), timeout=30)
    assert received.mail_from == f"bounces+{sent['id']}@{hosted.name}"
    rest_view = rest.get(f"/messages/{sent['id']}").json()
    assert rest_view["from"] == hosted.address("news") and rest_view["subject"] == "Hello"
    looked_up = graphql(client, rest.token, f'{{ message(id: "{sent["id"]}") {{ id }} }}')
    assert looked_up["data"]["message"]["id"] == sent["id"]
    _, stranger = sender()  # another organisation's token
    hidden = graphql(client, stranger.token, f'{{ message(id: "{sent["id"]}") {{ id }} }}')
    assert hidden["data"] is None and hidden["errors"][0]["extensions"]["code"] == "not_found"
    theft = graphql(client, stranger.token, SEND, {**variables, "key": "gql-2"})
    assert theft["errors"][0]["extensions"]["code"] == "sender_not_allowed"


def test_it_refuses_like_the_rest_call(sender, client, stack_node, mail_stack):
    hosted, rest = sender()
    organisation = hosted.domain.organisation
    variables = {"from": hosted.address("news"), "to": [internet_address()]}
    nobody = graphql(client, None, SEND, variables)
    assert nobody["errors"][0]["extensions"]["code"] == "unauthenticated"
    viewer = graphql(client, make_token(organisation, read_only=True), SEND, variables)
    assert viewer["errors"][0]["extensions"]["status"] == 403
    forged = graphql(client, rest.token, SEND, {**variables, "from": "ceo@elsewhere.test"})
    assert forged["errors"][0]["extensions"]["code"] == "sender_not_allowed"
    bad = graphql(client, rest.token, SEND, {**variables, "to": ["not an address"]})
    assert bad["errors"][0]["extensions"]["status"] == 422
    assert not Message.objects.filter(organisation=organisation).exists()

import pytest

from mailhost.names import (
    InvalidName,
    domain_for_display,
    normalise_address,
    normalise_domain,
    normalise_local_part,
)


def test_it_stores_unicode_domains_as_idna_and_shows_them_as_unicode():
    assert normalise_domain("bücher.example") == "xn--bcher-kva.example"
    assert domain_for_display("xn--bcher-kva.example") == "bücher.example"


def test_it_lower_cases_and_drops_the_root_dot():
    assert normalise_domain("Example.COM.") == "example.com"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("../etc", "separator"),
        ("a b.com", "separator"),
        ("exa_mple.com", "letters, digits and inner hyphens"),
        ("a" * 64 + ".com", "longer than 63"),
        (".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 62]), "longer than 253"),  # 254 chars
        ("-lead.com", "inner hyphens"),
        ("example", "two labels"),
        ("a..b.com", "empty label"),
        ("exa\nmple.com", "separator"),
        ("exa\0mple.com", "separator"),
        ("a|b.com", "separator"),
        ("192.168.0.1", "IP address"),
        ("", "Enter a domain"),
    ],
)
def test_it_refuses_hostile_or_malformed_domains_with_a_reason(raw, message):
    with pytest.raises(InvalidName, match=message):
        normalise_domain(raw)


def test_it_accepts_a_63_character_label_and_a_253_character_name():
    assert normalise_domain("a" * 63 + ".com") == "a" * 63 + ".com"
    longest = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 61])
    assert len(longest) == 253 and normalise_domain(longest) == longest


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("a b", "' '"),
        ("a:b", "':'"),
        ("a|b", "'|'"),
        ("a,b", "','"),
        ("a\nb", "'\\\\n'"),
        ("a\0b", "'\\\\x00'"),
        ("../x", "'/'"),
        ("a" * 65, "longer than 64"),
        (".lead", "no leading"),
        ("trail.", "trailing"),
        ("dou..ble", "double dot"),
        ("ünï", "ASCII"),
        ("", "Enter the part"),
    ],
)
def test_it_refuses_local_parts_that_would_break_a_map_line(raw, message):
    with pytest.raises(InvalidName, match=message):
        normalise_local_part(raw)


def test_it_normalises_a_whole_address():
    assert normalise_address("John.Doe+tag@Bücher.Example") == "john.doe+tag@xn--bcher-kva.example"


def test_it_refuses_an_address_with_two_ats():
    with pytest.raises(InvalidName, match="exactly one @"):
        normalise_address("a@b@example.com")


@pytest.mark.parametrize("local", ["plus+tag", "t~x", "ab'c", "a`b", "a^b", "a%b", "_a", "-a"])
def test_it_refuses_a_hosted_local_part_the_stack_cannot_serve(local):
    with pytest.raises(InvalidName, match=r"a-z, digits 0-9 and the characters \. _ -"):
        normalise_local_part(local)
    assert normalise_address(f"{local}@example.test") == f"{local}@example.test"  # external


def test_it_agrees_with_the_renderer_and_dovecot_on_every_character():
    """The portal, the renderer's defence in depth and Dovecot's auth_username_chars accept
    exactly the same characters in a hosted local part (Postfix cuts '+' off as a tag)."""
    from mailhost.backend.config import render_dovecot_conf
    from mailhost.backend.render import _SAFE_HOSTED_ADDRESS
    from tests.backend.test_config_render import CONFIG

    conf = render_dovecot_conf(CONFIG)
    dovecot_chars = set(conf.split("auth_username_chars = ", 1)[1].split("\n", 1)[0]) - {"@"}
    for char in map(chr, range(33, 127)):
        if char.lower() != char:
            continue  # upper case is folded to lower case before any of them looks
        try:
            portal = normalise_local_part(f"a{char}b") == f"a{char}b"
        except InvalidName:
            portal = False
        renderer = bool(_SAFE_HOSTED_ADDRESS.fullmatch(f"a{char}b@x.test"))
        assert portal == renderer == (char in dovecot_chars), char

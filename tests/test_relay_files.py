"""Signed file links: the business can fetch a user's file, nobody can forge, alter or reuse a link late."""

import pytest

from smoochrelay.files import FileLinks, LinkRefused

SECRET = "link-secret-for-tests"


def _token(url: str) -> str:
    return url.split("/files/", 1)[1].split("/", 1)[0]


def _links(ttl: int = 3600) -> FileLinks:
    return FileLinks(SECRET, "https://relay.example.com/", ttl)


def test_link_round_trips_what_it_points_at():
    url = _links().link(file_id="F1", app_user_id="U1", mime_type="image/jpeg", name="cat photo.jpg", size=1234,
                        now=1000)
    assert url.startswith("https://relay.example.com/files/")
    assert url.endswith("/cat_photo.jpg")
    ref = _links().verify(_token(url), now=1000)
    assert (ref.file_id, ref.app_user_id, ref.mime_type, ref.name, ref.size) == (
        "F1", "U1", "image/jpeg", "cat photo.jpg", 1234)


def test_expired_link_is_refused():
    token = _token(_links(ttl=60).link(file_id="F", app_user_id="U", mime_type="a/b", name="n", size=1, now=1000))
    _links(ttl=60).verify(token, now=1059)
    with pytest.raises(LinkRefused):
        _links(ttl=60).verify(token, now=1061)


@pytest.mark.parametrize("mangle", [
    lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),            # signature altered
    lambda t: ("e" if t[0] != "e" else "f") + t[1:],                # claims altered
    lambda t: t.split(".")[0],                                      # signature missing
    lambda t: "",
    lambda t: "not.base64!",
])
def test_altered_or_forged_links_are_refused(mangle):
    token = _token(_links().link(file_id="F", app_user_id="U", mime_type="a/b", name="n", size=1))
    with pytest.raises(LinkRefused):
        _links().verify(mangle(token))


def test_link_cannot_be_repointed_at_another_users_file():
    links = _links()
    mine = _token(links.link(file_id="MINE", app_user_id="alice", mime_type="a/b", name="n", size=1))
    theirs = _token(links.link(file_id="THEIRS", app_user_id="bob", mime_type="a/b", name="n", size=1))
    spliced = mine.split(".")[0] + "." + theirs.split(".")[1]
    with pytest.raises(LinkRefused):
        links.verify(spliced)


def test_another_installs_secret_does_not_verify():
    token = _token(_links().link(file_id="F", app_user_id="U", mime_type="a/b", name="n", size=1))
    with pytest.raises(LinkRefused):
        FileLinks("other-secret", "https://relay.example.com", 3600).verify(token)


def test_link_never_contains_a_telegram_token_shape():
    url = _links().link(file_id="AgACAgIAAxkBAAIB", app_user_id="U", mime_type="a/b", name="n", size=1)
    assert "/bot" not in url and "api.telegram.org" not in url

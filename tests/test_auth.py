"""API authentication: Basic with a key id and secret, Bearer HS256 JWTs with kid and scope "app"."""

import base64
import time

import jwt
import pytest

from smoochrelay.auth import AuthError, authenticate, basic_header, make_jwt

KEY_ID = "app_5f0c6e3e8a1b2c3d4e5f6a7b"
SECRET = "Qx3n0lKq9wY1k0Zl2mJ1c0b8QeW6dO2vXzYhHc4s2pEQx3n0lKq9wY1k0Zl2mJ1c0b8Qe"
KEYS = {KEY_ID: SECRET, "app_other": "another-secret-of-sufficient-length-000000"}


def secret_for(key_id):
    return KEYS.get(key_id)


def refused(header, description="Invalid credentials"):
    with pytest.raises(AuthError) as caught:
        authenticate(header, secret_for)
    assert caught.value.description == description
    assert caught.value.code == "unauthorized"


def bearer(claims, secret=SECRET, algorithm="HS256", headers=None):
    return "Bearer " + jwt.encode(claims, secret, algorithm=algorithm,
                                  headers={"kid": KEY_ID} if headers is None else headers)


def test_basic_accepts_the_key():
    assert authenticate(basic_header(KEY_ID, SECRET), secret_for) == KEY_ID
    assert authenticate(basic_header(KEY_ID, SECRET).replace("Basic", "basic"), secret_for) == KEY_ID


def test_basic_secret_may_contain_colons():
    KEYS["app_colon"] = "a:b:c"
    try:
        assert authenticate(basic_header("app_colon", "a:b:c"), secret_for) == "app_colon"
    finally:
        del KEYS["app_colon"]


@pytest.mark.parametrize("header", [
    basic_header(KEY_ID, SECRET + "x"),
    basic_header(KEY_ID, SECRET[:-1]),
    basic_header("app_unknown", SECRET),
    basic_header("app_other", SECRET),
    basic_header(KEY_ID, ""),
    "Basic " + base64.b64encode(KEY_ID.encode()).decode(),
    "Basic !!!notbase64",
    "Basic " + base64.b64encode(b"\xff\xfe:\xff").decode(),
    "Basic",
    "Digest " + SECRET,
    "Token " + SECRET,
    SECRET,
])
def test_basic_refusals_say_nothing_specific(header):
    refused(header)


@pytest.mark.parametrize("header", [None, "", "   "])
def test_missing_header(header):
    refused(header, "Authorization is required")


def test_oversized_header():
    refused("Basic " + "A" * 10000)


def test_jwt_accepted():
    assert authenticate("Bearer " + make_jwt(KEY_ID, SECRET), secret_for) == KEY_ID
    assert authenticate(bearer({"scope": "app", "exp": int(time.time()) + 60}), secret_for) == KEY_ID


def test_jwt_expired():
    refused("Bearer " + make_jwt(KEY_ID, SECRET, expires_in=-10))


def test_jwt_wrong_secret():
    refused(bearer({"scope": "app"}, secret="not-the-secret-but-long-enough-00000000"))


def test_jwt_revoked_key():
    token = make_jwt(KEY_ID, SECRET)
    assert authenticate("Bearer " + token, secret_for) == KEY_ID
    with pytest.raises(AuthError):
        authenticate("Bearer " + token, lambda key_id: None)


@pytest.mark.parametrize("claims", [{"scope": "account"}, {"scope": "appUser", "userId": "u"}, {}, {"scope": None}])
def test_jwt_scope_must_be_app(claims):
    refused(bearer(claims))


def test_jwt_missing_kid():
    refused(bearer({"scope": "app"}, headers={}))


def test_jwt_kid_of_another_key():
    refused(bearer({"scope": "app"}, headers={"kid": "app_other"}))


def test_jwt_hs512_refused():
    refused(bearer({"scope": "app"}, algorithm="HS512"))


def test_jwt_alg_none_refused():
    header = base64.urlsafe_b64encode(f'{{"alg":"none","typ":"JWT","kid":"{KEY_ID}"}}'.encode()).rstrip(b"=")
    body = base64.urlsafe_b64encode(b'{"scope":"app"}').rstrip(b"=")
    refused(f"Bearer {header.decode()}.{body.decode()}.")


def test_jwt_header_alg_lie_refused():
    """A token whose header says HS256 but whose signature is HS512 does not verify."""
    good = jwt.encode({"scope": "app"}, SECRET, algorithm="HS512", headers={"kid": KEY_ID})
    _, payload, signature = good.split(".")
    header = base64.urlsafe_b64encode(f'{{"alg":"HS256","kid":"{KEY_ID}"}}'.encode()).rstrip(b"=").decode()
    refused(f"Bearer {header}.{payload}.{signature}")


@pytest.mark.parametrize("token", ["garbage", "a.b.c", "", "..."])
def test_jwt_malformed(token):
    refused("Bearer " + token)


def test_secret_lookup_happens_only_for_the_named_key():
    asked = []

    def lookup(key_id):
        asked.append(key_id)
        return KEYS.get(key_id)

    authenticate("Bearer " + make_jwt(KEY_ID, SECRET), lookup)
    authenticate(basic_header(KEY_ID, SECRET), lookup)
    assert asked == [KEY_ID, KEY_ID]

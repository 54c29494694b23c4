"""Pure parts of deliveries: backoff, the seed's body, signing, header parsing, the URL guard."""

import ipaddress
import socket

import pytest

from shared.config import Settings
from shared.delivery import emails, webhooks
from shared.delivery.policy import retry_delay
from shared.errors import InvalidRequest
from shared.states import JobStatus
from shared.url_guard import BlockedUrl, check_url, parse_networks
from tests.support import claim_for


def test_backoff_doubles_from_the_base_up_to_the_cap_with_jitter_between_half_and_all():
    top = [retry_delay(n, base=30, cap=3600, rng=lambda: 1.0) for n in range(1, 9)]
    assert top == [30, 60, 120, 240, 480, 960, 1920, 3600]
    bottom = [retry_delay(n, base=30, cap=3600, rng=lambda: 0.0) for n in range(1, 9)]
    assert bottom == [value / 2 for value in top]
    assert retry_delay(40, base=0.2, cap=1.0, rng=lambda: 1.0) == 1.0  # no overflow, capped


def test_payload_is_the_seed_body_with_msg_only_on_error():
    ok = webhooks.payload("j1", JobStatus.COMPLETE, "Completed", "a/b.ibflowbin", "a/in", "a/out")
    assert ok == {
        "status": "OK",
        "job_id": "j1",
        "binary_path": "a/b.ibflowbin",
        "input_dir": "a/in",
        "output": "a/out",
    }
    failed = webhooks.payload("j1", JobStatus.FAILED, "Failed: boom", "b", "i", "o")
    assert failed["status"] == "ERROR" and failed["msg"] == "Failed: boom"
    assert webhooks.payload("j", JobStatus.CANCELLED, "x", "b", "i", "o")["status"] == "ERROR"
    assert "msg" not in webhooks.payload("j", JobStatus.STOPPED_AT_CHECKPOINT, "x", "b", "i", "o")


def test_signature_is_hmac_sha256_over_timestamp_dot_body_and_rejects_replays():
    body = webhooks.encode({"status": "OK", "job_id": "j1"})
    signature = webhooks.sign("s3cret-s3cret-s3cret", 1_700_000_000, body)
    # Independently computed: printf '1700000000.{"status":"OK","job_id":"j1"}' | openssl ...
    import hashlib
    import hmac

    expected = hmac.new(b"s3cret-s3cret-s3cret", b"1700000000." + body, hashlib.sha256)
    assert signature == "sha256=" + expected.hexdigest()
    verify = webhooks.verify
    assert verify("s3cret-s3cret-s3cret", "1700000000", body, signature, now=1_700_000_100)
    assert not verify(
        "s3cret-s3cret-s3cret", "1700000000", body + b" ", signature, now=1_700_000_100
    )
    assert not verify("other-other-other!", "1700000000", body, signature, now=1_700_000_100)
    assert not verify("s3cret-s3cret-s3cret", "1700000000", body, signature, now=1_700_000_400)
    assert not verify("s3cret-s3cret-s3cret", "nope", body, signature, now=1_700_000_000)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, {}),
        ({"X-Token": "abc", "X-Num": 5}, {"X-Token": "abc", "X-Num": "5"}),
        ('{"X-Token": "abc"}', {"X-Token": "abc"}),
        ("X-Token: abc\nX-Other:  d: e ", {"X-Token": "abc", "X-Other": "d: e"}),
    ],
)
def test_headers_accept_an_object_a_json_string_or_header_lines(raw, expected):
    assert webhooks.normalize_headers(raw) == expected


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ({"Bad Name": "x"}, "not a valid header name"),
        ({"X-A": "one\r\nX-Injected: two"}, "one line"),
        ({"X-Flowbin-Signature": "forged"}, "set by Flowbin"),
        ({"content-type": "text/plain"}, "set by Flowbin"),
        ({"X-A": ["list"]}, "must be strings"),
        ("no colon here", "Name: value"),
        ("{not json", "JSON"),
        (["X-A"], "object"),
    ],
)
def test_bad_headers_are_clear_400s(raw, fragment):
    with pytest.raises(InvalidRequest, match=fragment) as caught:
        webhooks.normalize_headers(raw)
    assert caught.value.http_status == 400
    assert caught.value.msg.startswith("settings.webhook_config.headers")


def no_dns(host, port):
    raise socket.gaierror(f"no DNS for {host} in unit tests")


def fake_dns(mapping):
    return lambda host, port: mapping[host]


@pytest.mark.parametrize(
    "url",
    ["https://example.com/hook", "http://93.184.215.14:8080/x?y=1", "http://[2606:4700::1111]/"],
)
def test_public_http_urls_pass(url):
    resolver = fake_dns({"example.com": ["93.184.215.14", "2606:2800:21f:cb07::1"]})
    assert check_url(url, resolver=resolver) == url


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("ftp://example.com/x", "only http and https"),
        ("file:///etc/passwd", "only http and https"),
        ("javascript:alert(1)", "only http and https"),
        ("http:///nohost", "no host"),
        ("http://example.com:99999/", "not a valid URL"),
        ("", "required"),
        ("http://127.0.0.1:8000/", "loopback"),
        ("http://localhost/", "loopback"),
        ("http://10.1.2.3/", "private"),
        ("http://192.168.0.10/", "private"),
        ("http://169.254.169.254/latest/meta-data", "link-local"),
        ("http://[::1]/", "loopback"),
        ("http://[fe80::1]/", "link-local"),
        ("http://[::ffff:10.0.0.1]/", "private"),
        ("http://0.0.0.0/", "unspecified"),
        ("http://100.64.0.1/", "private"),
        ("http://224.0.0.1/", "multicast"),
        ("http://rebound.example/", "private"),  # one of its addresses is private
        ("http://nowhere.invalid/", "does not resolve"),
    ],
)
def test_unsafe_urls_are_refused_with_the_reason(url, fragment):
    resolver = fake_dns(
        {"localhost": ["127.0.0.1", "::1"], "rebound.example": ["93.184.215.14", "10.0.0.7"]}
    )

    def resolver_or_fail(host, port):
        return no_dns(host, port) if host == "nowhere.invalid" else resolver(host, port)

    with pytest.raises(BlockedUrl, match=fragment) as caught:
        check_url(url, field="settings.webhook_config.url", resolver=resolver_or_fail)
    assert caught.value.http_status == 400
    assert caught.value.msg.startswith("settings.webhook_config.url")


def test_allowed_networks_open_exactly_those_private_addresses():
    allowed = parse_networks(" 127.0.0.0/8 , 10.1.0.0/16,::1/128")
    assert allowed == (
        ipaddress.ip_network("127.0.0.0/8"),
        ipaddress.ip_network("10.1.0.0/16"),
        ipaddress.ip_network("::1/128"),
    )
    assert check_url("http://127.0.0.1:9/", allowed, resolver=no_dns)
    assert check_url("http://10.1.200.3/", allowed, resolver=no_dns)
    assert check_url("http://[::1]:9/", allowed, resolver=no_dns)
    with pytest.raises(BlockedUrl):
        check_url("http://10.2.0.1/", allowed, resolver=no_dns)
    with pytest.raises(ValueError, match="FLOWBIN_ALLOWED_NETWORKS: 'not-a-network'"):
        parse_networks("10.0.0.0/8,not-a-network")
    with pytest.raises(ValueError, match="FLOWBIN_WEBHOOK_ALLOWED_NETWORKS: 'x'"):
        parse_networks("x", "FLOWBIN_WEBHOOK_ALLOWED_NETWORKS")


def test_webhooks_may_reach_the_general_networks_and_those_of_the_older_setting():
    both = Settings(allowed_networks="10.1.0.0/16", webhook_allowed_networks="127.0.0.0/8")
    assert webhooks.guard(both).allowed_networks == (
        ipaddress.ip_network("10.1.0.0/16"),
        ipaddress.ip_network("127.0.0.0/8"),
    )
    for settings in (Settings(allowed_networks="127.0.0.0/8"), both):
        assert webhooks.checked_config(settings, {"url": "http://127.0.0.1:1/h"})
    with pytest.raises(ValueError, match="FLOWBIN_WEBHOOK_ALLOWED_NETWORKS"):
        webhooks.guard(Settings(webhook_allowed_networks="10.0.0.0/33"))


def test_checked_config_normalizes_what_the_job_keeps():
    settings = Settings(webhook_allowed_networks="127.0.0.0/8")
    assert webhooks.checked_config(settings, None) is None
    config = webhooks.checked_config(
        settings, {"url": " http://127.0.0.1:1/h ", "headers": "X-A: 1"}
    )
    assert config == {"url": "http://127.0.0.1:1/h", "headers": {"X-A": "1"}}
    with pytest.raises(BlockedUrl, match="settings.webhook_config.url: .*loopback"):
        webhooks.checked_config(Settings(), {"url": "http://127.0.0.1:1/h"})


def test_email_content_names_the_job_and_its_outcome():
    body = webhooks.payload("j9", JobStatus.FAILED, "Failed: nothing came through", "b", "i", "o")
    mail = emails.content("j9", JobStatus.FAILED, "Failed: nothing came through", body)
    assert mail["subject"] == "Flowbin job j9: FAILED"
    assert "Failed: nothing came through" in mail["text"] and "Output folder: o" in mail["text"]


def test_float_settings_are_read_from_the_environment():
    settings = Settings.from_env(
        {"FLOWBIN_DELIVERY_RETRY_BASE": "0.25", "FLOWBIN_SMTP_PORT": "2525"}
    )
    assert settings.delivery_retry_base == 0.25 and settings.smtp_port == 2525
    assert Settings.from_env(settings.to_env()) == settings
    with pytest.raises(ValueError, match="FLOWBIN_DELIVERY_TIMEOUT must be a number"):
        Settings.from_env({"FLOWBIN_DELIVERY_TIMEOUT": "soon"})


def test_the_guard_runs_again_before_each_attempt():
    result = webhooks.attempt(Settings(delivery_timeout=1), claim_for("http://127.0.0.1:9/h"))
    assert not result.delivered and result.status_code is None
    assert result.error.startswith("not sent: webhook URL: '127.0.0.1' is a loopback address")


def test_a_refused_connection_is_a_failed_attempt_with_the_os_reason():
    from tests.support import free_port

    settings = Settings(delivery_timeout=1, webhook_allowed_networks="127.0.0.0/8")
    result = webhooks.attempt(settings, claim_for(f"http://127.0.0.1:{free_port()}/h"))
    assert not result.delivered
    assert result.error.startswith("could not connect: ConnectionRefusedError")


def test_email_without_an_smtp_server_fails_saying_what_to_set():
    result = emails.attempt(Settings(), claim_for("ops@example.com"))
    assert not result.delivered and "FLOWBIN_SMTP_HOST" in result.error
    bad_mode = emails.attempt(
        Settings(smtp_host="127.0.0.1", smtp_tls="maybe"), claim_for("ops@example.com")
    )
    assert "FLOWBIN_SMTP_TLS" in bad_mode.error

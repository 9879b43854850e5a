# -*- coding: utf-8 -*-
# Copyright (c) seed.consul_peering contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The collection's one HTTP client for the Consul API.

Everything that talks HTTP lives here: connection options and their environment
fallbacks, TLS, bounded retries, and the mapping of HTTP failures to one
exception type (ConsulError) that carries the status and Consul's own text.
Modules turn a ConsulError into fail_json in exactly one place, run_module().
"""

from __future__ import annotations

import atexit
import base64
import json
import math
import os
import random
import re
import stat
import tempfile
import time
import traceback
from urllib.parse import quote, quote_plus, urlsplit

from ansible.module_utils.basic import missing_required_lib

REQUESTS_IMPORT_ERROR = None
try:
    import requests
    from requests.adapters import HTTPAdapter
except ImportError:  # pragma: no cover - exercised only where requests is missing
    requests = None
    HTTPAdapter = object
    REQUESTS_IMPORT_ERROR = traceback.format_exc()

DEFAULT_URL = "http://127.0.0.1:8500"
MASK = "********"

CONNECTION_ARGSPEC = dict(
    url=dict(type="str"),
    token=dict(type="str", no_log=True),
    ca_path=dict(type="path"),
    # Environment fallbacks are resolved in one place, resolve_connection(), with one parser; the
    # argspec has none, so a variable cannot mean one thing there and another here.
    client_cert=dict(type="path"),
    client_key=dict(type="path", no_log=False),
    validate_certs=dict(type="bool"),
    tls_server_name=dict(type="str"),
    partition=dict(type="str"),
    datacenter=dict(type="str"),
    timeout=dict(type="float", default=10),
)

# Consul's own words for "there is no such object" on a 404 (agent/peering_endpoint.go,
# agent/config_endpoint.go); any other 404 is not an absence.
PEERING_ABSENT = r"^Peering not found for "
CONFIG_ENTRY_ABSENT = r"^Config entry not found for "

# Seconds an establish request may take: Consul's own secret exchange with an accepting cluster
# that does not answer gives up after about 20 s (measured on 1.22.7).
ESTABLISH_TIMEOUT = 60

# Statuses worth another try on a request that is safe to repeat.
RETRY_STATUSES = frozenset([429, 502, 503, 504])
# Consul answers 500 with these while a server has no leader (e.g. just restarted).
RETRY_500_TEXTS = ("No cluster leader", "rpc error making call: EOF", "connection refused")

_TRUE = ("1", "true", "yes", "on", "y", "t")
_FALSE = ("0", "false", "no", "off", "n", "f")


_NOT_JSON = object()


class ConsulError(Exception):
    """A failure talking to Consul, with the HTTP status where there was one."""

    def __init__(self, msg, status=None, body=None, maybe_applied=False, no_leader=False):
        super().__init__(msg)
        self.msg = msg
        self.status = status
        self.body = body
        # A write that was sent but whose answer was lost: Consul may have applied it.
        self.maybe_applied = maybe_applied
        # No answer in time, and the agent reports no cluster leader: the cause is known.
        self.no_leader = no_leader

    def __str__(self):
        return self.msg


def _after_attempts(n):
    return "after 1 attempt" if n == 1 else "after %d attempts" % n


def env_bool(env, var):
    """A boolean environment variable: None when unset or empty, else true/false, else an error.

    Accepts what Consul's CLI (Go's strconv.ParseBool) and Ansible accept as booleans.
    """
    raw = env.get(var)
    if raw is None or str(raw).strip() == "":
        return None
    value = str(raw).strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConsulError("%s=%r is not a boolean: use true or false (also 1/0, yes/no, on/off)" % (var, str(raw)))


def url_userinfo(value):
    """The user information (``user:password@`` or ``token@``) in a URL, or None; never to be printed."""
    value = (value or "").strip()
    rest = value.split("://", 1)[1] if "://" in value else value
    netloc = re.split(r"[/?#]", rest, 1)[0]
    return netloc.rsplit("@", 1)[0] if "@" in netloc else None


def normalize_url(value, ssl=False, option="url"):
    """Turn CONSUL_HTTP_ADDR-style input (URL or host:port) into a base URL.

    A URL with credentials in it is refused without being echoed: the collection
    never sends them (Consul reads the ACL token only from X-Consul-Token), and
    every later message would print them.
    """
    value = (value or "").strip()
    if not value:
        raise ConsulError("the Consul address is empty; set url or CONSUL_HTTP_ADDR")
    if url_userinfo(value) is not None:
        raise ConsulError(
            "the Consul address in %s has user information ('user:password@' or 'token@') before the host; "
            "Consul does not read credentials from the URL, so they would be ignored: remove them and give the "
            "ACL token as token (or CONSUL_HTTP_TOKEN / CONSUL_HTTP_TOKEN_FILE)" % option)
    if "://" not in value:
        value = ("https://" if ssl else "http://") + value
    elif ssl and value.lower().startswith("http://"):
        # As Consul's CLI does: CONSUL_HTTP_SSL=true never reverts to plain HTTP.
        value = "https://" + value[len("http://"):]
    parts = urlsplit(value)
    if parts.scheme == "unix":
        raise ConsulError(
            "the Consul address %r is a unix socket: the modules talk HTTP over TCP only; use the agent's "
            "http:// or https:// address (addresses.http / ports.http in its configuration)" % value)
    if parts.scheme not in ("http", "https"):
        raise ConsulError(
            "the Consul address %r is not usable: only http:// and https:// addresses are supported" % value
        )
    if not parts.hostname:
        raise ConsulError("the Consul address %r has no host name" % value)
    try:
        parts.port
    except ValueError:
        raise ConsulError("the Consul address %r has an invalid port" % value)
    if parts.path not in ("", "/") or parts.query or parts.fragment or value.endswith(("?", "#")):
        raise ConsulError(
            "the Consul address %r has a path, query or fragment; give only scheme, host and port (for example "
            "https://consul.example.com:8501): the modules add the /v1/... API paths themselves, and options such "
            "as datacenter replace query parameters like ?dc=" % value)
    return value.rstrip("/")


def normalize_token(value, source="token"):
    """An ACL token as it is sent: surrounding whitespace stripped, as Consul's CLI does for token files.

    Anything else that cannot go into an HTTP header (whitespace inside, control or
    non-ASCII characters) is refused with a message that never contains the token:
    the HTTP library's own error would quote it.
    """
    if value is None:
        return None
    token = str(value).strip()
    if not token:
        return None
    if not _HEADER_SAFE.fullmatch(token):
        raise ConsulError(
            "the ACL token from %s contains a character that cannot be sent in the X-Consul-Token header "
            "(whitespace inside it, a control character or a non-ASCII character); check how it was copied "
            "(the token itself is not shown)" % source)
    return token


# What an ACL token may contain once stripped: printable ASCII without spaces.
_HEADER_SAFE = re.compile(r"[\x21-\x7e]+")


def read_token_file(path, warn=None, source="CONSUL_HTTP_TOKEN_FILE"):
    """The ACL token in a token file; an unreadable or empty file is an error, a world-readable one a warning."""
    try:
        mode = os.stat(path).st_mode
        with open(path) as f:
            raw = f.read()
    except (IOError, OSError) as e:
        raise ConsulError("cannot read the ACL token file %s (%s): %s" % (path, source, e.strerror))
    if mode & stat.S_IROTH and warn:
        warn("the ACL token file %s (%s) is readable by every user on this machine (mode %o); "
             "restrict it: chmod 600 %s" % (path, source, stat.S_IMODE(mode), path))
    token = normalize_token(raw, "the token file %s (%s)" % (path, source))
    if not token:
        raise ConsulError(
            "the ACL token file %s (%s) is empty; requests would be sent anonymously: write the token into it, "
            "or unset %s to use no token" % (path, source, source))
    return token


TLS_OPTIONS = ("ca_path", "client_cert", "client_key", "tls_server_name")


def resolve_connection(params, environ=None, warn=None):
    """Resolve connection options: option, then environment variable, then default.

    Pure apart from reading CONSUL_HTTP_TOKEN_FILE. Returns a new dict.
    """
    env = os.environ if environ is None else environ
    warn = warn or (lambda msg: None)
    ssl = bool(env_bool(env, "CONSUL_HTTP_SSL"))
    conn = dict((k, params.get(k)) for k in CONNECTION_ARGSPEC)
    given_tls = [k for k in TLS_OPTIONS if conn.get(k)]

    if conn["url"]:
        conn["url"] = normalize_url(conn["url"], ssl)
    elif env.get("CONSUL_HTTP_ADDR"):
        conn["url"] = normalize_url(env["CONSUL_HTTP_ADDR"], ssl, option="CONSUL_HTTP_ADDR")
    else:
        conn["url"] = DEFAULT_URL

    if conn["token"] is not None and str(conn["token"]).strip() == "" and conn["token"] != "":
        raise ConsulError("the token option holds only whitespace; give the ACL token, or leave the option unset")
    conn["token"] = normalize_token(conn["token"], "the token option")
    if not conn["token"]:
        if env.get("CONSUL_HTTP_TOKEN", "").strip():
            conn["token"] = normalize_token(env["CONSUL_HTTP_TOKEN"], "CONSUL_HTTP_TOKEN")
        elif env.get("CONSUL_HTTP_TOKEN_FILE"):
            conn["token"] = read_token_file(env["CONSUL_HTTP_TOKEN_FILE"], warn)
    if not conn["ca_path"]:
        conn["ca_path"] = env.get("CONSUL_CACERT") or env.get("CONSUL_CAPATH") or None
    for key, var in (("client_cert", "CONSUL_CLIENT_CERT"), ("client_key", "CONSUL_CLIENT_KEY"),
                     ("tls_server_name", "CONSUL_TLS_SERVER_NAME"), ("partition", "CONSUL_PARTITION")):
        if not conn[key] and env.get(var):
            conn[key] = env[var]
    if conn["validate_certs"] is None:
        verify = env_bool(env, "CONSUL_HTTP_SSL_VERIFY")
        conn["validate_certs"] = True if verify is None else verify
    if bool(conn["client_cert"]) != bool(conn["client_key"]):
        raise ConsulError("client_cert and client_key must be given together (mutual TLS needs both)")
    if conn["url"].startswith("http://"):
        # TLS settings with a plain-HTTP address: the user meant TLS, and the token would go in cleartext.
        if given_tls:
            raise ConsulError(
                "%s %s set, but the Consul address %s is plain http://, so the ACL token and every answer would "
                "travel unencrypted: use an https:// url (or CONSUL_HTTP_SSL=true with a host:port address), or "
                "drop the TLS options" % (", ".join(given_tls), "is" if len(given_tls) == 1 else "are", conn["url"]))
        from_env = [k for k in TLS_OPTIONS if conn.get(k)]
        if from_env:
            warn("TLS settings from the environment (%s) are ignored: the Consul address %s is plain http://, "
                 "so requests are not encrypted" % (", ".join(from_env), conn["url"]))
    if conn["timeout"] is None:
        conn["timeout"] = CONNECTION_ARGSPEC["timeout"]["default"]
    if not math.isfinite(conn["timeout"]) or conn["timeout"] <= 0:
        raise ConsulError("timeout must be a positive, finite number of seconds, got %s" % conn["timeout"])
    return conn


def path_segment_problem(value, option):
    """Why a name cannot go into a request path as it is, or None.

    The HTTP library removes '.' and '..' segments and Consul's router cleans
    empty ones, so such a name would address another object (or the collection
    of all objects) instead of the one meant.
    """
    if not isinstance(value, str) or value == "":
        return "%s must be a non-empty string" % option
    parts = value.split("/")
    if any(part in ("", ".", "..") for part in parts):
        return ("%s %r cannot be used: a name that is '.' or '..', or has an empty, '.' or '..' part between "
                "'/', would change the request path and address another object" % (option, value))
    return None


def api_path(*segments):
    """A request path from fixed parts and names, each name checked and quoted as one segment."""
    out = []
    for seg in segments:
        problem = path_segment_problem(seg, "the name")
        if problem:
            raise ConsulError(problem)
        out.append(quote(seg, safe=""))
    return "/" + "/".join(out)


def permission_from_text(text):
    """Extract the missing permission from Consul's 403 text, if it names one."""
    m = re.search(r"lacks permission '([^']+)'", text or "")
    return m.group(1) if m else None


def describe_http_error(status, text, method, path):
    """A message naming the cause of an HTTP failure, in the operator's words."""
    text = (text or "").strip()
    if status == 403:
        perm = permission_from_text(text)
        if perm:
            return "permission denied: the ACL token lacks permission '%s' (needed for %s %s)" % (perm, method, path)
        if "ACL not found" in text:
            return "permission denied: Consul does not know the ACL token (ACL not found); check token or CONSUL_HTTP_TOKEN"
        return "permission denied for %s %s: %s" % (method, path, text or "HTTP 403")
    if status == 400 and "HTTP request to an HTTPS server" in text:
        return ("Consul serves HTTPS on this port, but the request was plain HTTP (%s %s): use an https:// url "
                "(or CONSUL_HTTP_SSL=true with a host:port CONSUL_HTTP_ADDR)" % (method, path))
    if status == 401:
        return "unauthorized for %s %s: %s" % (method, path, text or "HTTP 401")
    return "Consul answered HTTP %s to %s %s: %s" % (status, method, path, text or "(no text)")


def redirect_message(status, location, method, path, base):
    """A redirect refused: names the Location's host only (its path and query may carry anything)."""
    target = urlsplit(location or "")
    host = target.hostname or urlsplit(base).hostname or "?"
    if target.port:
        host = "%s:%d" % (host, target.port)
    where = "host " + host if location else "nowhere"
    plain = " over plain http" if target.scheme == "http" else ""
    return ("the server at %s answered %s to %s %s with a redirect to %s%s; the collection never follows redirects "
            "(Consul's HTTP API does not send them, and following one would resend the ACL token): point url at "
            "the Consul server itself" % (base, status, method, path, where, plain))


def _readable_file(path, option):
    """The problem with a TLS file option, or None (checked before any request is sent)."""
    if not os.path.exists(path):
        return "%s %s does not exist" % (option, path)
    if not os.access(path, os.R_OK):
        return "%s %s is not readable by this user" % (option, path)
    return None


def ca_dir_bundle(path):
    """A CA directory as requests can use it.

    OpenSSL reads a directory only through hash-named links (openssl rehash), while Consul's
    CONSUL_CAPATH takes any directory of PEM files. A directory without such links is read like
    Consul does: its PEM certificates go into one bundle file (public data), removed at exit.
    """
    names = sorted(os.listdir(path))
    if any(re.match(r"^[0-9a-f]{8}\.\d+$", n) for n in names):
        return path
    pems = []
    for name in names:
        full = os.path.join(path, name)
        if not os.path.isfile(full):
            continue
        try:
            with open(full) as f:
                text = f.read()
        except (IOError, OSError, UnicodeDecodeError):
            continue
        if "-----BEGIN CERTIFICATE-----" in text:
            pems.append(text.strip() + "\n")
    if not pems:
        raise ConsulError("cannot use the CA certificate: ca_path (or CONSUL_CAPATH) %s holds no PEM certificate" % path)
    fd, bundle = tempfile.mkstemp(prefix="consul-ca-", suffix=".pem")
    with os.fdopen(fd, "w") as f:
        f.write("".join(pems))
    atexit.register(_remove_quietly, bundle)
    return bundle


def _remove_quietly(path):
    try:
        os.remove(path)
    except OSError:
        pass


def tls_request_options(conn, warn=None):
    """The requests options (verify, cert) for an https:// Consul address; raises ConsulError on bad files."""
    warn = warn or (lambda msg: None)
    opts = {"verify": True}
    if conn.get("validate_certs") is False:
        opts["verify"] = False
        warn("TLS certificate verification is off (validate_certs=false): the Consul server is not authenticated")
    elif conn.get("ca_path"):
        problem = _readable_file(conn["ca_path"], "ca_path (or CONSUL_CACERT / CONSUL_CAPATH)")
        if problem:
            raise ConsulError("cannot use the CA certificate: " + problem)
        opts["verify"] = conn["ca_path"]
        if os.path.isdir(conn["ca_path"]):
            opts["verify"] = ca_dir_bundle(conn["ca_path"])
    if conn.get("client_cert"):
        for key in ("client_cert", "client_key"):
            problem = _readable_file(conn[key], "%s (or CONSUL_%s)" % (key, key.upper()))
            if problem:
                raise ConsulError("cannot use the client certificate: " + problem)
        opts["cert"] = (conn["client_cert"], conn["client_key"])
    return opts


def is_tls_failure(exc):
    """Whether a requests/urllib3 exception is a TLS (handshake or certificate) failure."""
    text = str(exc)
    return (type(exc).__name__ == "SSLError" or "SSLError" in text or "CertificateError" in text
            or "CERTIFICATE_VERIFY_FAILED" in text)


def _ssl_detail(text):
    """OpenSSL's own words from an exception text, e.g. '[SSL: CERTIFICATE_VERIFY_FAILED] ...'."""
    m = re.search(r"\[(?:SSL|X509)[^\]]*\][^()]*?(?=\s*\(_ssl|'\)|\"\)|$)", text)
    if m:
        return m.group(0).strip().rstrip(".")
    m = re.search(r"CertificateError\((['\"])(.*?)\1\)", text)
    return (m.group(2) if m else text)[:300]


def tls_failure_reason(text, conn):
    """A TLS failure in the operator's words: what is wrong and which option fixes it."""
    detail = _ssl_detail(text)
    host = conn.get("tls_server_name") or urlsplit(conn.get("url") or "").hostname
    ca = conn.get("ca_path")
    if "CERTIFICATE_REQUIRED" in text or "certificate required" in text:
        reason = ("the server requires a client certificate (mutual TLS, verify_incoming): set client_cert and "
                  "client_key (or CONSUL_CLIENT_CERT / CONSUL_CLIENT_KEY)")
    elif any(t in text for t in ("UNKNOWN_CA", "unknown ca", "BAD_CERTIFICATE", "bad certificate",
                                 "CERTIFICATE_EXPIRED", "certificate expired")) and "VERIFY_FAILED" not in text:
        reason = ("the server rejected the client certificate %s: it must be signed by a CA the server trusts "
                  "and be valid now" % conn.get("client_cert"))
    elif any(t in text for t in ("PEM lib", "KEY_VALUES_MISMATCH", "NO_START_LINE", "key values mismatch")):
        reason = ("cannot load the client certificate %s or its key %s: both must be PEM files that belong together"
                  % (conn.get("client_cert"), conn.get("client_key")))
    elif "NO_CERTIFICATE_OR_CRL_FOUND" in text or "no certificate or crl found" in text:
        reason = "ca_path %s holds no PEM CA certificate" % ca
    elif "Hostname mismatch" in text or "doesn't match" in text or "IP address mismatch" in text:
        reason = ("the server certificate is not valid for the name %r: connect with a name the certificate "
                  "carries, or set tls_server_name (CONSUL_TLS_SERVER_NAME) to one" % host)
    elif "certificate has expired" in text or "not yet valid" in text:
        reason = "the server certificate is expired or not yet valid"
    elif "CERTIFICATE_VERIFY_FAILED" in text:
        reason = ("the server certificate is not signed by a trusted CA (%s): set ca_path or CONSUL_CACERT to the "
                  "CA that signed it, or validate_certs=false to skip verification (insecure)"
                  % ("ca_path %s" % ca if ca else "the system CA bundle; ca_path is not set"))
    elif "WRONG_VERSION_NUMBER" in text or "wrong version number" in text or "record layer failure" in text:
        reason = "the server does not speak TLS on this port: is it plain HTTP (then use an http:// url)?"
    else:
        reason = "TLS handshake failed"
    return "%s (%s)" % (reason, detail)


def secret_forms(value):
    """The forms in which a secret can appear in text: raw, repr/JSON-escaped, URL-encoded, base64.

    Libraries quote a header value with repr() (a newline becomes a backslash and
    an n), URLs carry it %-encoded, and an Authorization-style header base64.
    """
    if not value or len(str(value)) < 4:
        return set()
    value = str(value)
    forms = {value, value.strip(), repr(value)[1:-1], json.dumps(value)[1:-1], quote(value, safe=""),
             quote_plus(value, safe="")}
    try:
        forms.add(base64.b64encode(value.encode("utf-8")).decode("ascii").rstrip("="))
    except UnicodeError:  # pragma: no cover - str always encodes to UTF-8
        pass
    return set(f for f in forms if len(f) >= 4)


# A run of base64/URL-safe characters long enough that, found inside a known
# secret, it is a piece of that secret (a truncated token in a library message).
_FRAGMENT_RE = re.compile(r"[A-Za-z0-9+/=_-]{24,}")


def scrub_text(text, secrets):
    """text with every known secret, and every long fragment of one, replaced by the mask."""
    text = "" if text is None else str(text)
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, MASK)
    if secrets:
        text = _FRAGMENT_RE.sub(lambda m: MASK if any(m.group(0) in s for s in secrets) else m.group(0), text)
    return text


class _ServerNameAdapter(HTTPAdapter):
    """Verify the server certificate against a name other than the URL's host."""

    def __init__(self, server_name, **kwargs):
        self._server_name = server_name
        super().__init__(**kwargs)

    def init_poolmanager(self, *args, **kwargs):
        kwargs["server_hostname"] = self._server_name
        kwargs["assert_hostname"] = self._server_name
        super().init_poolmanager(*args, **kwargs)


class ConsulClient:
    """A small, retrying client for the Consul HTTP API."""

    def __init__(self, conn, session=None, sleep=time.sleep, retries=3, backoff=0.5, warn=None):
        self.conn = conn
        self.base = conn["url"]
        self.retries = retries
        self.backoff = backoff
        self.sleep = sleep
        self.warn = warn or (lambda msg: None)
        self._secrets = set()
        self.add_secret(conn.get("token"))
        self._server = None
        if session is None:
            if requests is None:
                raise ConsulError(missing_required_lib("requests"))
            session = requests.Session()
            if conn.get("tls_server_name") and self.base.startswith("https://"):
                session.mount("https://", _ServerNameAdapter(conn["tls_server_name"]))
        self.session = session
        if conn.get("token"):
            self.session.headers["X-Consul-Token"] = conn["token"]
        # verify/cert go with every request, not only on the session: requests lets
        # REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE from the environment override session.verify
        # (even verify=False), which would silently ignore ca_path and validate_certs.
        self._tls = tls_request_options(conn, warn=self.warn) if self.base.startswith("https://") else {}
        if self._tls.get("verify") is False and requests is not None:
            requests.packages.urllib3.disable_warnings(requests.packages.urllib3.exceptions.InsecureRequestWarning)
        for key, value in self._tls.items():
            setattr(self.session, key, value)

    # -- secrets -----------------------------------------------------------
    def add_secret(self, value):
        """Remember a value that must never appear in a message, in every form a message could quote it."""
        for form in secret_forms(value):
            self._secrets.add(form)

    def scrub(self, text):
        return scrub_text(text, self._secrets)

    # -- requests ----------------------------------------------------------
    def _query(self, query):
        q = {}
        if self.conn.get("datacenter"):
            q["dc"] = self.conn["datacenter"]
        if self.conn.get("partition"):
            q["partition"] = self.conn["partition"]
        for k, v in (query or {}).items():
            if v is not None:
                q[k] = v
        return q

    def request(self, method, path, query=None, body=None, not_found=None, safe=None, absent_text=None,
                expect=None, with_meta=False, timeout=None):
        """Send one request; return the decoded JSON body.

        not_found: the value to return on 404 instead of raising, but only when Consul's text says the
        object does not exist (absent_text, a regular expression, required with not_found: each endpoint
        names its own words): any other 404 (Consul's "Invalid URL path", a proxy, a server that is not
        Consul) is an error, never a silent absence.
        expect: the JSON type the answer must have (dict, list, bool); anything else is an error.
        with_meta: return a Response (value, index, filtered_by_acls) instead of the value alone.
        timeout: seconds for this request, instead of the connection's timeout.
        safe: whether repeating the request is harmless (default: GET and DELETE).
        A request that never reached the server is retried whatever the method.
        """
        if not_found is not None and absent_text is None:
            raise TypeError("request(not_found=...) needs absent_text, the words in which this endpoint says "
                            "that the object does not exist")
        if safe is None:
            safe = method in ("GET", "HEAD", "DELETE")
        url = self.base + path
        params = self._query(query)
        data = None if body is None else json.dumps(body)
        attempts = self.retries + 1
        read_timeout = timeout or self.conn["timeout"]
        last = None
        timed_out_after = 0  # attempts when the last failure was a read timeout
        for attempt in range(attempts):
            if attempt:
                delay = self.backoff * (2 ** (attempt - 1))
                self.sleep(delay * (1 + random.random() * 0.1))
            try:
                # Consul's API never redirects; following one would resend the ACL token (and a peering
                # token in a body) to wherever the Location points, possibly in cleartext.
                resp = self.session.request(method, url, params=params, data=data, timeout=read_timeout,
                                            allow_redirects=False, **self._tls)
            except Exception as e:  # requests raises many types; classify by name
                last = self._connection_failure(e, attempt + 1, read_timeout)
                timed_out_after = attempt + 1 if type(e).__name__ == "ReadTimeout" else 0
                if is_tls_failure(e):
                    # A certificate problem does not go away by asking again.
                    raise last
                if self._never_sent(e) or safe:
                    continue
                last.maybe_applied = method not in ("GET", "HEAD")
                raise self._leaderless(last, read_timeout, timed_out_after)
            timed_out_after = 0
            status = resp.status_code
            headers = getattr(resp, "headers", None) or {}
            if status == 404 and not_found is not None and re.search(absent_text, resp.text or ""):
                return Response(not_found, headers) if with_meta else not_found
            if 200 <= status < 300:
                value = self._decode(resp, expect, method, path)
                return Response(value, headers) if with_meta else value
            if 300 <= status < 400:
                raise ConsulError(self.scrub(redirect_message(status, headers.get("Location"), method, path,
                                                              self.base)), status=status)
            text = self.scrub(resp.text)
            last = ConsulError(self.scrub(describe_http_error(status, text, method, path)), status=status, body=text)
            retryable = status in RETRY_STATUSES or (status == 500 and any(t in text for t in RETRY_500_TEXTS))
            if retryable and safe:
                continue
            # A gateway's 502/504 says nothing of whether the server behind it applied the write; nor does
            # a 500 of a leader change ("rpc error making call: EOF": the old leader may have committed it).
            # A caller that can check (a CAS loop re-reads) then retries instead of failing the run.
            last.maybe_applied = (status in (502, 504) or retryable) and method not in ("GET", "HEAD")
            raise last
        raise self._leaderless(last, read_timeout, timed_out_after)

    def _leaderless(self, err, timeout, attempts):
        """err, or (after a read timeout: attempts > 0) an error naming the cause when the agent reports no leader.

        Consul forwards most requests to the leader; without one (a quorum of servers down, or a restarted
        server not yet promoted to voter) the peering endpoints wait without answering. The agent answers
        GET /v1/status/leader itself, at once: an empty address there explains the timeout.
        """
        if not attempts:
            return err
        try:
            resp = self.session.request("GET", self.base + "/v1/status/leader", params=self._query(None),
                                        timeout=min(3, self.conn["timeout"]), allow_redirects=False, **self._tls)
            leader = json.loads(resp.text) if resp.status_code == 200 else None
        except Exception:  # pylint: disable=broad-except
            return err  # the question was only to explain the timeout
        if leader != "":
            return err
        return ConsulError(self.scrub(
            "Consul at %s gave no answer within %ss (%s) and reports no cluster leader (GET /v1/status/leader "
            "is empty): a quorum of its servers is down, or a restarted server is not yet a voter. Consul answers "
            "nothing that needs a leader until it has one; run again once `consul operator raft list-peers` "
            "shows a leader" % (self.base, timeout, _after_attempts(attempts))), maybe_applied=err.maybe_applied,
            no_leader=True)

    def _decode(self, resp, expect, method, path):
        """The JSON answer, checked: a 2xx that is not the JSON Consul sends is not an answer from Consul."""
        text = resp.text
        if not text:
            if expect is None:
                return None
            value = None
        else:
            try:
                value = json.loads(text)
            except ValueError:
                value = _NOT_JSON
        if value is _NOT_JSON or (expect is not None and not isinstance(value, expect)):
            headers = getattr(resp, "headers", None) or {}
            ctype = headers.get("Content-Type") or "no content type"
            raise ConsulError(self.scrub(
                "the server at %s answered %s %s with HTTP %s but not with Consul's JSON (%s: %r): is url the "
                "Consul HTTP API itself (scheme, host and port only), not a proxy or another service?"
                % (self.base, method, path, resp.status_code, ctype, (text or "")[:80])), status=resp.status_code)
        return value

    @staticmethod
    def _never_sent(exc):
        name = type(exc).__name__
        if name == "ConnectTimeout":
            return True
        text = repr(exc)
        return name == "ConnectionError" and ("NewConnectionError" in text or "Connection refused" in text)

    def _connection_failure(self, exc, attempts, timeout):
        attempts = _after_attempts(attempts)
        name = type(exc).__name__
        text = str(exc)
        if is_tls_failure(exc):
            msg = "cannot talk to Consul at %s over TLS: %s" % (self.base, tls_failure_reason(text, self.conn))
        elif name == "ReadTimeout":
            # Consul 1.22 takes ~12 s to refuse a peering read the ACL token may not make.
            msg = ("cannot reach Consul at %s: no answer within %ss (%s); the server accepted the "
                   "connection, so it may be overloaded, or refusing the ACL token slowly (Consul delays some ACL "
                   "denials by about 12 s): raise timeout to 30 to see its answer" % (
                       self.base, timeout, attempts))
        elif name in ("ConnectTimeout", "Timeout"):
            msg = "cannot reach Consul at %s: timed out after %ss (%s)" % (
                self.base, timeout, attempts)
        elif "Connection refused" in text:
            msg = "cannot reach Consul at %s: connection refused (%s); is the agent running?" % (
                self.base, attempts)
        elif self.base.startswith("http://") and ("RemoteDisconnected" in text or "BadStatusLine" in text):
            msg = ("cannot talk to Consul at %s: the server closed the connection without an HTTP answer; "
                   "if it serves HTTPS on this port, use an https:// url (or CONSUL_HTTP_SSL=true)" % self.base)
        else:
            msg = "cannot reach Consul at %s: %s" % (self.base, self._short(exc))
        return ConsulError(self.scrub(msg))

    @staticmethod
    def _short(exc):
        name = type(exc).__name__
        if name in ("InvalidHeader", "InvalidURL", "InvalidSchema", "MissingSchema", "UnicodeError",
                    "UnicodeEncodeError", "LocationParseError"):
            # These quote the header value or URL they refused, which may be a secret.
            return "%s (the library's text is not shown: it quotes the value it refused)" % name
        text = str(exc)
        m = re.search(r"\[SSL[^\]]*\][^()'\"]*", text)
        if m:
            return m.group(0).strip()
        m = re.search(r"Caused by (\w+\(.*)", text)
        return (m.group(1) if m else text)[:300]

    # -- server facts ------------------------------------------------------
    def server(self):
        """(version, enterprise) of the agent behind url, read once (GET /v1/agent/self)."""
        if self._server is None:
            info = self.request("GET", "/v1/agent/self", expect=dict)
            cfg = info.get("Config") or {}
            version = str(cfg.get("Version", ""))
            meta = str(cfg.get("VersionMetadata", ""))
            self._server = (version, "ent" in meta or "+ent" in version)
        return self._server

    def require_enterprise_for(self, what):
        """Fail clearly when an Enterprise-only option is used against Consul CE."""
        version, enterprise = self.server()
        if not enterprise:
            raise ConsulError("%s needs Consul Enterprise, but the server at %s runs Consul CE %s"
                              % (what, self.base, version))

    def require_version(self, needs):
        """Fail clearly when the server is older than what the input uses.

        needs: [(minimum version as a tuple, what)] for the input actually given; an empty list
        costs no request. Sending such a field to an older Consul is a 400 at best, a silent drop
        at worst.
        """
        if not needs:
            return
        version, dummy = self.server()
        have = version_tuple(version)
        if have is None:
            return
        missing = ["%s needs Consul %s or later" % (what, ".".join(str(n) for n in minimum))
                   for minimum, what in needs if have < tuple(minimum)]
        if missing:
            raise ConsulError("%s; the server at %s runs Consul %s" % ("; ".join(missing), self.base, version))

    def trust_domain(self):
        """The Connect CA trust domain (GET /v1/connect/ca/roots): what the cluster says about itself.

        None when Connect is disabled (500 "Connect must be enabled") or the token may not read it;
        only a failure to reach the server at all is an error.
        """
        try:
            roots = self.request("GET", "/v1/connect/ca/roots", expect=dict)
        except ConsulError as e:
            if e.status is None:
                raise
            return None
        return roots.get("TrustDomain") or None

    # -- peerings ----------------------------------------------------------
    def get_peering(self, name):
        """The peering named name, or None when there is none."""
        return self.request("GET", api_path("v1", "peering", name), not_found={}, absent_text=PEERING_ABSENT,
                            expect=dict) or None

    def watch_peerings(self, index=None, wait=None):
        """GET /v1/peerings as a blocking query (index/wait): a Response whose index is X-Consul-Index.

        Consul answers when the list changes or after wait seconds; the request's read timeout
        covers the wait. Computed states (ACTIVE/FAILING) do not wake it (measured on 1.22.7).
        """
        query = None
        timeout = None
        if index:
            seconds = max(1, int(round(wait or 0)))
            query = {"index": str(index), "wait": "%ds" % seconds}
            timeout = self.conn["timeout"] + seconds * 1.1
        return self.request("GET", "/v1/peerings", query=query, expect=list, with_meta=True, timeout=timeout)

    def list_peerings(self):
        return self.request("GET", "/v1/peerings", expect=list)

    def delete_peering(self, name):
        return self.request("DELETE", api_path("v1", "peering", name))

    def generate_peering_token(self, name, meta=None, server_external_addresses=None):
        """POST /v1/peering/token; returns the token, already registered as a secret."""
        body = {"PeerName": name}
        if meta:
            body["Meta"] = meta
        if server_external_addresses:
            body["ServerExternalAddresses"] = list(server_external_addresses)
        res = self.request("POST", "/v1/peering/token", body=body, safe=False, expect=dict)
        token = res.get("PeeringToken")
        if not token:
            raise ConsulError("Consul answered POST /v1/peering/token without a PeeringToken")
        self.add_secret(token)
        return token

    def establish_peering(self, name, token, meta=None, timeout=None):
        """POST /v1/peering/establish with a token the caller has decoded and registered.

        Consul answers only after its servers exchanged the secret with the accepting cluster's
        servers (about 20 s before it gives up on an address that does not answer), so the
        request's timeout is at least ESTABLISH_TIMEOUT.
        """
        body = {"PeerName": name, "PeeringToken": token}
        if meta:
            body["Meta"] = meta
        self.request("POST", "/v1/peering/establish", body=body, safe=False, expect=dict,
                     timeout=max(timeout or 0, self.conn["timeout"], ESTABLISH_TIMEOUT))

    # -- config entries ----------------------------------------------------
    def get_config_entry(self, kind, name, namespace=None):
        """The entry, or None when Consul says there is none. A namespace other than default goes as ?ns=."""
        return self.request("GET", api_path("v1", "config", kind, name), query=_ns_query(namespace), not_found={},
                            absent_text=CONFIG_ENTRY_ABSENT, expect=dict) or None

    def cas_put_config_entry(self, entry, modify_index):
        """Write entry only if it is still at modify_index (0 = create only). True if written.

        Not repeated by the client once sent: if the answer is lost, the write may have been applied,
        and only the caller, by reading again, can tell (ConsulError.maybe_applied).
        """
        res = self.request("PUT", "/v1/config", body=entry, query={"cas": str(int(modify_index or 0))}, safe=False,
                           expect=bool)
        return res is True

    def cas_delete_config_entry(self, kind, name, modify_index, namespace=None):
        query = dict(_ns_query(namespace) or {}, cas=str(int(modify_index)))
        # Not repeated once sent, like the CAS write: a lost answer is settled by reading again.
        res = self.request("DELETE", api_path("v1", "config", kind, name), query=query, safe=False)
        return res is True or (isinstance(res, dict) and res.get("Deleted") is True)

    # -- sessions and KV locks -------------------------------------------------
    def create_session(self, name, ttl, behavior="delete", lock_delay="0s", node_checks=None):
        """PUT /v1/session/create; returns the new session's ID.

        Safe to repeat: a second session from a lost answer holds nothing and its TTL removes it.
        node_checks=[] ties the session to its TTL alone (not to the health of the agent's node).
        """
        body = {"Name": name, "TTL": "%ds" % int(ttl), "Behavior": behavior, "LockDelay": lock_delay}
        if node_checks is not None:
            body["NodeChecks"] = list(node_checks)
        res = self.request("PUT", "/v1/session/create", body=body, safe=True, expect=dict)
        if not res.get("ID"):
            raise ConsulError("Consul answered PUT /v1/session/create without an ID")
        return res["ID"]

    def session_info(self, session):
        """The session, or None when Consul no longer has it (expired or destroyed)."""
        res = self.request("GET", api_path("v1", "session", "info", session), expect=list, not_found=[],
                           absent_text=r"^$")
        return res[0] if res else None

    def renew_session(self, session):
        """PUT /v1/session/renew/<id>: the session, or None when it is gone (renewing is safe to repeat)."""
        res = self.request("PUT", api_path("v1", "session", "renew", session), safe=True, expect=list, not_found=[],
                           absent_text=r"^Session id '[^']*' not found")
        return res[0] if res else None

    def destroy_session(self, session):
        """PUT /v1/session/destroy/<id> (safe to repeat: destroying a gone session is true too)."""
        return self.request("PUT", api_path("v1", "session", "destroy", session), safe=True, expect=bool) is True

    def kv_get(self, key, index=None, wait=None):
        """A Response whose value is the KV entry of key (a dict, Value base64) or None when absent.

        index/wait make it a blocking query: Consul answers when the key changes or after wait.
        """
        query = {}
        if index is not None:
            query.update(index=str(index), wait="%ds" % max(1, int(wait or 1)))
        timeout = max(self.conn["timeout"], (wait or 0) + 5) if index is not None else None
        resp = self.request("GET", api_path("v1", "kv", *key.split("/")), query=query, expect=list, not_found=[],
                            absent_text=r"^$", with_meta=True, timeout=timeout)
        resp.value = resp.value[0] if resp.value else None
        return resp

    def kv_acquire(self, key, value, session):
        """PUT /v1/kv/<key>?acquire=<session>: True when the session holds the lock.

        Safe to repeat: a session acquiring a lock it already holds gets true again.
        """
        return self.request("PUT", api_path("v1", "kv", *key.split("/")), query={"acquire": session}, body=value,
                            safe=True, expect=bool) is True

    def kv_release(self, key, session):
        """PUT /v1/kv/<key>?release=<session> (safe to repeat)."""
        return self.request("PUT", api_path("v1", "kv", *key.split("/")), query={"release": session},
                            safe=True, expect=bool) is True

    # -- health --------------------------------------------------------------
    def service_instances_from_peer(self, service, peer):
        """GET /v1/health/service/<service>?peer=<peer>: (instances, filtered_by_acls)."""
        resp = self.request("GET", api_path("v1", "health", "service", service), query={"peer": peer}, expect=list,
                            with_meta=True)
        return resp.value, resp.filtered_by_acls


def version_tuple(text):
    """(major, minor, patch) of a Consul version such as '1.22.7' or '1.21.5+ent', or None."""
    m = re.match(r"\s*v?(\d+)\.(\d+)(?:\.(\d+))?", text or "")
    return (int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)) if m else None


def _ns_query(namespace):
    return {"ns": namespace} if namespace and namespace != "default" else None


class Response:
    """A decoded answer with the metadata the callers need, as values (no state kept on the client)."""

    def __init__(self, value, headers):
        self.value = value
        self.index = headers.get("X-Consul-Index")
        self.filtered_by_acls = str(headers.get("X-Consul-Results-Filtered-By-ACLs", "")).lower() == "true"

# -*- coding: utf-8 -*-
# Copyright (c) seed.consul_peering contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment:
    # Connection options shared by every module of the collection, and what they need to run.
    DOCUMENTATION = r"""
requirements:
  - Python 3.8 or later and the C(requests) library on the host that runs the module. That is the
    controller with C(ansible_connection=local) (the usual way), or the Consul server when the module runs
    over SSH on it.
notes:
  - With C(ansible_connection=local), the module's code runs inside the worker process that Ansible
    forks for the task (the collection's action plugin of the same name), not in a new module process;
    the same argument checks, result and C(no_log) masking, without the cost of starting a module for
    every host and task. Set the variable C(seed_consul_peering_in_process=false) to run it as a module
    process instead. It runs as a module process anyway with any other connection, C(become), C(async),
    a task or play C(environment), or when the controller's Python lacks C(requests).
options:
  url:
    description:
      - Address of the Consul HTTP API, as a URL (V(https://consul.example.com:8501)) or as
        V(host:port).
      - If not set, the value of the E(CONSUL_HTTP_ADDR) environment variable is used; a V(host:port)
        value there means V(https://) when E(CONSUL_HTTP_SSL) is true, V(http://) otherwise.
      - If neither is set, V(http://127.0.0.1:8500).
      - When E(CONSUL_HTTP_SSL) is true, an V(http://) address is used as V(https://), as Consul's CLI does;
        that setting never falls back to plain HTTP.
      - Only scheme, host and port. An address with a path (V(http://host:8500/v1)), a query (V(?dc=dc1),
        use O(datacenter)) or a fragment is refused before any request, and so is a V(unix://) socket
        address (the modules talk HTTP over TCP).
      - User information in the address (V(https://TOKEN@host)) is refused, since Consul never reads credentials
        from the URL. Redirects are never followed.
    type: str
  token:
    description:
      - ACL token sent as the C(X-Consul-Token) header.
      - It is never logged and never returned.
      - If not set, the value of E(CONSUL_HTTP_TOKEN) is used, else the contents of the file named by
        E(CONSUL_HTTP_TOKEN_FILE). An empty token file is an error; one readable by every user gives a warning.
      - Surrounding whitespace (a trailing newline) is stripped, as Consul's CLI does; a token with whitespace
        inside it, a control or a non-ASCII character is refused, without the token in the message.
    type: str
  ca_path:
    description:
      - A CA bundle file (PEM), or a directory of PEM CA certificates, used to verify the Consul
        server's certificate over V(https://). A directory is read like Consul reads E(CONSUL_CAPATH);
        every PEM certificate in it counts, no C(openssl rehash) links are needed.
      - If not set, E(CONSUL_CACERT) is used, else E(CONSUL_CAPATH); if none is set, the system's
        CA bundle (which E(REQUESTS_CA_BUNDLE) may replace).
      - When set, it is used even if E(REQUESTS_CA_BUNDLE) or E(CURL_CA_BUNDLE) is set.
      - A file that does not exist fails the task before any request is sent.
    type: path
  client_cert:
    description:
      - Client certificate (PEM) for mutual TLS, needed when the Consul agent sets
        C(verify_incoming) for HTTPS. Falls back to E(CONSUL_CLIENT_CERT).
      - Give it together with O(client_key).
    type: path
  client_key:
    description:
      - Private key (PEM) of O(client_cert). Falls back to E(CONSUL_CLIENT_KEY).
    type: path
  validate_certs:
    description:
      - Whether to verify the server's TLS certificate.
      - If not set, E(CONSUL_HTTP_SSL_VERIFY) is used; if that is unset or empty too, V(true). A value there
        that is not a boolean (V(true)/V(false), V(1)/V(0), V(yes)/V(no), V(on)/V(off)) is an error.
      - Turning it off prints a warning; the server is then not authenticated, and the ACL token
        is sent to whoever answers.
    type: bool
  tls_server_name:
    description:
      - Name to check the server's certificate against (and to send as SNI) when it differs from
        the host in O(url), for example V(server.dc1.consul) when O(url) is an IP address or a load
        balancer's name that the certificate does not carry. Falls back to E(CONSUL_TLS_SERVER_NAME).
      - Used for V(https://) addresses only.
      - Given with a plain V(http://) address, O(ca_path), O(client_cert), O(client_key) and O(tls_server_name)
        are an error (the ACL token would travel unencrypted); the same settings from the environment are
        ignored with a warning.
    type: str
  partition:
    description:
      - Admin partition (Consul Enterprise only). Falls back to E(CONSUL_PARTITION).
      - On Consul CE any value other than V(default) fails with a clear error.
    type: str
  datacenter:
    description:
      - Datacenter to send the request to (C(?dc=)), for WAN-federated setups. Defaults to the
        datacenter of the agent reached through O(url).
    type: str
  timeout:
    description:
      - Timeout of each HTTP request, in seconds.
      - Consul 1.22 answers a peering read that the ACL token may not make only after about 11
        seconds; with a token that may lack C(peering:read), raise it (for example V(30)) to get
        Consul's C(permission denied) rather than a timeout.
    type: float
    default: 10
"""

    # What every module of the collection supports, written once (descriptions come from
    # ansible.builtin.action_common_attributes); a module adds diff_mode and its own details.
    ATTRIBUTES = r"""
attributes:
  check_mode:
    support: full
  platform:
    support: full
    platforms: posix
  action:
    description: An action plugin of the same name runs the module's code in the controller's worker for a
      local connection, and the module otherwise.
    support: full
  action_group:
    description: Use C(group/seed.consul_peering.consul) in C(module_defaults) to set the connection options once.
    support: full
    membership:
      - seed.consul_peering.consul
"""

    # The role's controller-side action plugins (cluster_peering_plan, cluster_peering_handover): no request,
    # no diff, run on the controller. Each adds its own check_mode.
    CONTROLLER = r"""
attributes:
  diff_mode:
    description: Returns no diff.
    support: none
  platform:
    description: Runs on the controller.
    support: full
    platforms: all
"""

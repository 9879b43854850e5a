# -*- coding: utf-8 -*-
# Copyright (c) seed.consul_peering contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment:
    # Connection options shared by every module of the collection.
    DOCUMENTATION = r"""
options:
  url:
    description:
      - Address of the Consul HTTP API, as a URL (V(https://consul.example.com:8501)) or as
        V(host:port).
      - If not set, the value of the E(CONSUL_HTTP_ADDR) environment variable is used; a V(host:port)
        value there means V(https://) when E(CONSUL_HTTP_SSL) is true, V(http://) otherwise.
      - If neither is set, V(http://127.0.0.1:8500).
    type: str
  token:
    description:
      - ACL token sent as the C(X-Consul-Token) header.
      - It is never logged and never returned.
      - If not set, the value of E(CONSUL_HTTP_TOKEN) is used, else the contents of the file named by
        E(CONSUL_HTTP_TOKEN_FILE).
    type: str
  ca_path:
    description:
      - A CA bundle file, or a directory of CA certificates, used to verify the Consul server's
        certificate.
      - If not set, E(CONSUL_CACERT) is used, else E(CONSUL_CAPATH).
    type: path
  client_cert:
    description:
      - Client certificate (PEM) for mutual TLS. Falls back to E(CONSUL_CLIENT_CERT).
    type: path
  client_key:
    description:
      - Private key (PEM) of O(client_cert). Falls back to E(CONSUL_CLIENT_KEY).
    type: path
  validate_certs:
    description:
      - Whether to verify the server's TLS certificate.
      - If not set, E(CONSUL_HTTP_SSL_VERIFY) is used; if that is unset too, V(true).
      - Turning it off prints a warning.
    type: bool
  tls_server_name:
    description:
      - Name expected in the server's certificate when it differs from the host in O(url).
        Falls back to E(CONSUL_TLS_SERVER_NAME).
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
    type: float
    default: 10
"""

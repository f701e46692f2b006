"""Who may make a management operation: the one check behind the management API and the repository load and
unload of REST and gRPC.

The rule: with a management token configured (``--management-token``), every management operation needs
``Authorization: Bearer TOKEN`` (an HTTP header, or gRPC ``authorization`` metadata), wherever the client is;
without one, only loopback clients may make it (the management API then cannot be bound beyond loopback at
all, see ``settings``). A proxy on the same host makes every client look local: configure a token there.
"""

from __future__ import annotations

import hmac
import ipaddress

from ..errors import PermissionDenied, Unauthenticated

__all__ = ["ManagementAccess", "grpc_peer_host", "is_loopback"]


def is_loopback(host: str | None) -> bool:
    """Whether ``host`` (an IP address as a listener reports its client) is a loopback address; an
    IPv4-mapped IPv6 address counts as its IPv4 address, anything unparsable as not loopback."""
    if not host:
        return False
    try:
        address = ipaddress.ip_address(host.strip("[]").partition("%")[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def grpc_peer_host(peer: str) -> str | None:
    """The client's IP address in grpc's peer string (``ipv4:127.0.0.1:5000``, ``ipv6:[::1]:5000``), or None
    for any other kind of peer."""
    kind, _, rest = peer.partition(":")
    if kind == "ipv4":
        return rest.rpartition(":")[0]
    if kind == "ipv6":
        return rest.rpartition(":")[0].strip("[]")
    return None


class ManagementAccess:
    """The rule above for one server; ``token`` is the configured management token, if any."""

    def __init__(self, token: str | None) -> None:
        self._expected = f"Bearer {token}".encode() if token else None

    @property
    def needs_token(self) -> bool:
        return self._expected is not None

    def check(self, what: str, *, authorization: str | None, client_host: str | None) -> None:
        """Return if the client may make the operation ``what`` (for the message), else raise
        :class:`Unauthenticated` (token missing or wrong) or :class:`PermissionDenied` (not loopback and no
        token configured). ``authorization`` is the client's Authorization value, ``client_host`` its IP."""
        if self._expected is not None:
            given = (authorization or "").encode("utf-8", "replace")
            if not hmac.compare_digest(given, self._expected):  # constant time: the token cannot be guessed
                raise Unauthenticated(
                    f"{what}: missing or wrong management token: send 'Authorization: Bearer TOKEN'"
                )
            return
        if not is_loopback(client_host):
            raise PermissionDenied(
                f"{what} is a management operation: allowed only from loopback clients unless the server "
                "has a management token (--management-token); then send 'Authorization: Bearer TOKEN'"
            )

"""A minimal MaxMind DB writer for tests: an IPv4 database (record size
24) whose entries are maps, e.g. {"country": {"iso_code": "JP"},
"location": {"latitude": 35.68, "longitude": 139.69}} - what City
databases hold and the country database shipped in data/geo/ does not.

Format: https://maxmind.github.io/MaxMind-DB/ (search tree, 16 zero bytes,
data section, then the metadata map after "\\xab\\xcd\\xefMaxMind.com").
"""
import ipaddress
import struct

META_MARKER = b"\xab\xcd\xefMaxMind.com"


class U:
    """An unsigned integer of a given MaxMind type (16, 32 or 64 bits)."""
    TYPES = {16: 5, 32: 6, 64: 9}

    def __init__(self, value, bits):
        self.value, self.type = value, self.TYPES[bits]


def _ctrl(typ, size):
    if size < 29:
        s5, ext = size, b""
    elif size < 285:
        s5, ext = 29, bytes([size - 29])
    elif size < 65821:
        s5, ext = 30, (size - 285).to_bytes(2, "big")
    else:
        s5, ext = 31, (size - 65821).to_bytes(3, "big")
    if typ <= 7:
        return bytes([(typ << 5) | s5]) + ext
    return bytes([s5, typ - 7]) + ext  # extended type after the control byte


def encode(v):
    if isinstance(v, str):
        b = v.encode()
        return _ctrl(2, len(b)) + b
    if isinstance(v, float):
        return _ctrl(3, 8) + struct.pack(">d", v)
    if isinstance(v, U):
        b = v.value.to_bytes((v.value.bit_length() + 7) // 8, "big")
        return _ctrl(v.type, len(b)) + b
    if isinstance(v, dict):
        return _ctrl(7, len(v)) + b"".join(encode(k) + encode(x)
                                           for k, x in v.items())
    if isinstance(v, list):
        return _ctrl(11, len(v)) + b"".join(encode(x) for x in v)
    raise TypeError("cannot encode %r" % (v,))


def write(path, entries):
    """entries: [(cidr, map)], IPv4 networks that do not overlap."""
    nodes = [[None, None]]  # each record: None, ("node", i) or ("data", off)
    data = b""
    for cidr, value in entries:
        net = ipaddress.IPv4Network(cidr)
        assert net.prefixlen > 0
        off = len(data)
        data += encode(value)
        bits = int(net.network_address)
        node = 0
        for i in range(net.prefixlen):
            b = (bits >> (31 - i)) & 1
            if i == net.prefixlen - 1:
                assert nodes[node][b] is None, "overlapping networks"
                nodes[node][b] = ("data", off)
                break
            rec = nodes[node][b]
            if rec is None:
                nodes.append([None, None])
                rec = nodes[node][b] = ("node", len(nodes) - 1)
            assert rec[0] == "node", "overlapping networks"
            node = rec[1]
    count = len(nodes)

    def value(rec):
        if rec is None:
            return count  # no data
        return rec[1] if rec[0] == "node" else count + 16 + rec[1]

    tree = b"".join(value(l).to_bytes(3, "big") + value(r).to_bytes(3, "big")
                    for l, r in nodes)
    meta = {
        "node_count": U(count, 32),
        "record_size": U(24, 16),
        "ip_version": U(4, 16),
        "database_type": "Meridian-Test-City",
        "languages": ["en"],
        "binary_format_major_version": U(2, 16),
        "binary_format_minor_version": U(0, 16),
        "build_epoch": U(1700000000, 64),
        "description": {"en": "Meridian test database"},
    }
    with open(path, "wb") as f:
        f.write(tree + b"\0" * 16 + data + META_MARKER + encode(meta))

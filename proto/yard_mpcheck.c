/*  yard_mpcheck.c — a structural walker over untrusted msgpack bytes.

    msgpack-c trusts the counts it reads: a 5-byte array32 header claiming
    2^32 elements makes it try to allocate 2^32 objects before it reads one
    (msgpack-c issue #1013), and a body of a million nils makes it allocate
    24 bytes for each. So every body is walked here first, without
    allocating: each length and each count is checked against the bytes
    that remain before it is used (every pending object needs at least one
    byte, so a count larger than the rest of the buffer is refused on the
    spot), nesting is bounded by YARD_MAX_DEPTH, the total number of
    elements by YARD_MAX_ELEMENTS, and the never-used byte 0xc1 is refused.

    The walk is iterative over a fixed stack of YARD_MAX_DEPTH counters, so
    hostile input cannot grow the C stack either. */
#include "yard_proto.h"

/*  Reads a big-endian unsigned integer of n (1, 2 or 4) bytes. */
static uint32_t s_be(const uint8_t *p, size_t n)
{
    uint32_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

/*  Walks one object at p[*offp], advancing *offp past it on success. */
static int s_walk(const uint8_t *p, size_t len, size_t *offp)
{
    /*  Items still to read in each open container (map: keys + values). */
    size_t left[YARD_MAX_DEPTH];
    int depth = 0;
    size_t pos = *offp;
    /*  Objects announced but not yet read, at every level: each needs at
        least one byte, so need <= len - pos holds throughout. */
    size_t need = 1;
    size_t elements = 0;

    if (!p || pos >= len)
        return YARD_E_MALFORMED;

    for (;;) {
        const size_t avail = len - pos; /*  >= need >= 1 */
        const uint8_t b = p[pos];
        size_t hdr = 1;      /*  bytes of type, length and ext type      */
        size_t lenbytes = 0; /*  bytes of big-endian length after b      */
        uint64_t body = 0;   /*  bytes of payload after the header       */
        uint64_t items = 0;  /*  elements of a container                 */
        bool container = false;

        if (b <= 0x7f || b >= 0xe0) {
            /*  positive / negative fixint */
        } else if (b <= 0x8f) {
            container = true;
            items = 2u * (b & 0x0fu);
        } else if (b <= 0x9f) {
            container = true;
            items = b & 0x0fu;
        } else if (b <= 0xbf) {
            body = b & 0x1fu;
        } else {
            switch (b) {
            case 0xc0: /*  nil   */
            case 0xc2: /*  false */
            case 0xc3: /*  true  */
                break;
            case 0xc4: /*  bin 8/16/32 */
            case 0xd9: /*  str 8  */
                lenbytes = 1;
                break;
            case 0xc5:
            case 0xda:
                lenbytes = 2;
                break;
            case 0xc6:
            case 0xdb:
                lenbytes = 4;
                break;
            case 0xc7: /*  ext 8/16/32: length, then a type byte */
                lenbytes = 1;
                break;
            case 0xc8:
                lenbytes = 2;
                break;
            case 0xc9:
                lenbytes = 4;
                break;
            case 0xca: /*  float 32 */
                body = 4;
                break;
            case 0xcb: /*  float 64 */
                body = 8;
                break;
            case 0xcc: /*  uint 8..64, int 8..64 */
            case 0xd0:
                body = 1;
                break;
            case 0xcd:
            case 0xd1:
                body = 2;
                break;
            case 0xce:
            case 0xd2:
                body = 4;
                break;
            case 0xcf:
            case 0xd3:
                body = 8;
                break;
            case 0xd4: /*  fixext 1..16: type byte + data */
                body = 1 + 1;
                break;
            case 0xd5:
                body = 1 + 2;
                break;
            case 0xd6:
                body = 1 + 4;
                break;
            case 0xd7:
                body = 1 + 8;
                break;
            case 0xd8:
                body = 1 + 16;
                break;
            case 0xdc: /*  array 16/32 */
                container = true;
                lenbytes = 2;
                break;
            case 0xdd:
                container = true;
                lenbytes = 4;
                break;
            case 0xde: /*  map 16/32 */
                container = true;
                lenbytes = 2;
                break;
            case 0xdf:
                container = true;
                lenbytes = 4;
                break;
            default: /*  0xc1: never used */
                return YARD_E_MALFORMED;
            }
            if (lenbytes) {
                if (1 + lenbytes > avail)
                    return YARD_E_MALFORMED;
                uint64_t n = s_be(p + pos + 1, lenbytes);
                hdr = 1 + lenbytes;
                if (container)
                    items = (b == 0xde || b == 0xdf) ? 2 * n : n;
                else
                    body = n;
                if (b >= 0xc7 && b <= 0xc9)
                    body += 1; /*  the ext type byte */
            }
        }

        /*  The object must fit in what is left after one byte for each
            object still announced after it, or need <= len - pos would
            stop holding and a later read could run past the end. */
        const size_t room = avail - (need - 1);
        if (hdr > room || body > room - hdr)
            return YARD_E_MALFORMED;
        pos += hdr + (size_t)body;
        need--;

        if (container) {
            /*  Every announced element needs a byte that is not already
                spoken for: this is what defeats #1013, before any use of
                the count. */
            if (items > (uint64_t)(len - pos - need))
                return YARD_E_MALFORMED;
            if (depth >= YARD_MAX_DEPTH)
                return YARD_E_TOO_LARGE;
            elements += (size_t)items;
            if (elements > YARD_MAX_ELEMENTS)
                return YARD_E_TOO_LARGE;
            if (items > 0) {
                need += (size_t)items;
                left[depth++] = (size_t)items;
                continue;
            }
        }

        /*  One object finished: close every container it completes. */
        while (depth > 0 && --left[depth - 1] == 0)
            depth--;
        if (depth == 0)
            break;
    }
    *offp = pos;
    return 0;
}

int yard_msgpack_skip(const void *data, size_t len, size_t *off)
{
    if (!off)
        return YARD_E_MALFORMED;
    return s_walk(data, len, off);
}

int yard_msgpack_check(const void *data, size_t len)
{
    if (len > YARD_MAX_BODY)
        return YARD_E_TOO_LARGE;
    size_t off = 0;
    int rc = s_walk(data, len, &off);
    if (rc)
        return rc;
    return off == len ? 0 : YARD_E_MALFORMED;
}

/*
 * dnsseal.server._udpfast: the UDP datagram loop in C.
 *
 * Why this exists: under load, a Python thread answering UDP pays the interpreter's cost
 * per datagram (recvfrom/sendto wrappers, the loop, a bytes object per slice) on top of
 * the kernel's, and that, not the answering logic, kept `dnsseal serve` below Knot's rate
 * (docs/serve-benchmarks.md).  This module moves only the per-datagram mechanics out of
 * Python: it receives a batch of datagrams with recvmmsg(2), answers the two cases that
 * need no decision of their own, and sends the answers with sendmmsg(2):
 *
 *   1. the response cache (engine.udp_cache: query bytes after the ID -> response bytes
 *      after the ID), filled by the Python byte path;
 *   2. the byte path's "name seen before" lane (WireTable.answer with a hit in
 *      WireTable.names): a plain query for a type the node holds, answered with the
 *      node's memoised RRset wire (and its RRSIG wire under DO);
 *   3. the byte path's NXDOMAIN (WireTable._find + _negative) below a closest encloser
 *      with no delegation, DNAME or wildcard to handle (WireTable.exist says which): the
 *      negative SOA and, under DO, the NSEC or NSEC3 proof, each RRset from the byte
 *      path's own memos or made by its own helpers on first use.
 *
 * For every other datagram it calls the byte path (engine.wire.answer) and keeps its
 * answer in the response cache, as the Python loop does; what the byte path leaves to the
 * general path is returned to Python, which hands it to the event loop as before.  Nothing here decides DNS semantics that the
 * Python code does not decide first: case 2 follows WireTable.answer line by line, reading
 * the same objects, and tests/server/test_udpfast.py checks that `answer()` below gives
 * byte-identical responses to WireTable.answer, or defers to it, on random questions.
 *
 * The GIL is released only inside recvmmsg/sendmmsg; the answers are copied into this
 * loop's own send buffers before it is released, so no Python object is read while
 * another thread may be replacing the zone set.
 */
#define _GNU_SOURCE
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <arpa/inet.h>
#include <errno.h>
#include <stdint.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#define BATCH 32
#define RECV_CAP 65536 /* a UDP datagram is at most 65507 octets */
#define SEND_CAP 65536
#define MIN_UDP 512
#define QR_AA 0x8400
#define ECHO 0x0110 /* RD and CD are copied from the query */

/* The query counters (dnsseal.server.counters, which says why; the numbers must match,
 * checked there when this module is loaded): one table of 64-bit words per writer, a word
 * per (question type row, rcode column); the loop adds to table 0 and the truncated word
 * of table 0 of its process's slot, under the GIL, one increment per datagram. */
#define QT_DIRECT 264 /* types 0..263 by number */
#define QT_OTHER QT_DIRECT
#define QT_NONE (QT_DIRECT + 1)
#define QT_SLOTS (QT_DIRECT + 2)
#define RC_SLOTS 17 /* rcode 0..15; 16: no response */
#define TABLE_WORDS (QT_SLOTS * RC_SLOTS)
#define REGIONS 4
#define TRUNC_WORD (REGIONS * TABLE_WORDS)
#define SLOT_WORDS ((TRUNC_WORD + REGIONS + 7) / 8 * 8)

/* ------------------------------------------------------------------------------------- */
/* The answer logic (shared by Loop.serve and the socket-free answer() used in tests).    */

typedef struct {
    PyObject *s_signed;
    PyObject *s_udp_cache, *s_wire, *s_names, *s_udp_payload, *s_answer, *s_exist;
    PyObject *s_nsec_sort, *s_nsec_denial, *s_nsec3_denial, *s_enclosers, *s_snap, *s_nsec3;
    PyObject *s_nsec3_digests, *s_nsec3_owners, *s_soa, *s_soa_sig, *s_nsec, *s_salt;
    PyObject *s_iterations, *s_current;
} Names;

static Names N; /* set once by configure() */

static int general_qtype(unsigned qtype) {
    /* wiretable.GENERAL_QTYPES: 0, NS, DS, OPT, RRSIG and the meta range 128-255 */
    return qtype == 0 || qtype == 2 || qtype == 41 || qtype == 43 || qtype == 46 ||
           (qtype >= 128 && qtype <= 255);
}

/* The record count of an RRset of ``qtype`` per WireRRsets.counts (None: one). */
static long rr_count(PyObject *counts, PyObject *key) {
    if (counts == Py_None) return 1;
    if (!PyDict_CheckExact(counts)) return -1;
    PyObject *c = PyDict_GetItemWithError(counts, key);
    if (c == NULL) return PyErr_Occurred() ? -1 : 1;
    long v = PyLong_AsLong(c);
    return (v == -1 && PyErr_Occurred()) ? -1 : v;
}

/* What both lanes know of a question once it is parsed (the NXDOMAIN lane also fills the
 * label fields). */
typedef struct {
    Py_ssize_t qend, end; /* end of the name, of the question (offsets in the query) */
    int edns, do_bit;
    long limit;           /* the largest response the client takes over UDP */
    unsigned qtype;
    int nlabels;            /* labels before the root */
    Py_ssize_t starts[128]; /* offset of each label in lname; starts[nlabels]: the root */
    unsigned char lname[256];
    Py_ssize_t lname_len;
} Question;

/* WireTable.answer's header test: a query (no other opcode), exactly one question, no
 * answer or authority records, and no additional record or one (the OPT).  1 if so. */
static int plain_header(const unsigned char *w, Py_ssize_t n, Question *q) {
    static const unsigned char qd_only[6] = {0, 1, 0, 0, 0, 0};
    if (n < 17 || (w[2] & 0xF8) || memcmp(w + 4, qd_only, 6) != 0) return 0;
    if (w[10] != 0 || w[11] > 1) return 0;
    q->edns = w[11];
    return 1;
}

/* fastpath.options_ok: every EDNS option from ``pos`` to ``n`` has a whole header and
 * its data inside the message, a COOKIE is 8 or 16-40 octets (RFC 6891 6.1.2, RFC 7873
 * 5.2.2).  Else the general path answers FORMERR.  1 if so. */
static int options_ok(const unsigned char *w, Py_ssize_t n, Py_ssize_t pos) {
    while (pos < n) {
        if (pos + 4 > n) return 0;
        unsigned code = (unsigned)w[pos] << 8 | w[pos + 1];
        Py_ssize_t len = (Py_ssize_t)w[pos + 2] << 8 | w[pos + 3];
        pos += 4 + len;
        if (code == 10 && !(len == 8 || (len >= 16 && len <= 40))) return 0;
    }
    return pos == n;
}

/* WireTable.answer's test of what follows the name (ending at ``q->qend``): class IN, a
 * type it answers, then nothing or one EDNS version 0 OPT ending the message; sets the
 * DO bit and the size limit.  1 if it passes. */
static int plain_tail(const unsigned char *w, Py_ssize_t n, long payload, Question *q) {
    Py_ssize_t qend = q->qend;
    if (qend + 4 > n || w[qend + 2] != 0 || w[qend + 3] != 1) return 0; /* class IN */
    q->qtype = (unsigned)w[qend] << 8 | w[qend + 1];
    if (general_qtype(q->qtype)) return 0;
    Py_ssize_t end = q->end = qend + 4;
    q->do_bit = 0;
    q->limit = MIN_UDP;
    if (q->edns) {
        if (n < end + 11 || w[end] != 0 || w[end + 1] != 0 || w[end + 2] != 41 ||
            w[end + 6] != 0 || end + 11 + ((Py_ssize_t)w[end + 9] << 8 | w[end + 10]) != n ||
            !options_ok(w, n, end + 11))
            return 0;
        q->do_bit = (w[end + 7] & 0x80) != 0;
        long bufsize = (long)w[end + 3] << 8 | w[end + 4];
        q->limit = bufsize < payload ? bufsize : payload;
        if (q->limit < MIN_UDP) q->limit = MIN_UDP;
    } else if (end != n) {
        return 0;
    }
    return 1;
}

/* The response WireTable.answer concatenates: our header (the query's ID, QR AA, RD and CD
 * echoed, ``rcode``; ``an`` answer or ``ns`` authority records), the query's own question,
 * the sections' wire ``bodies`` one after another, and our OPT when the query had one.
 * Its length, or 0 when it would not fit the client's limit or ``cap`` (truncation is the
 * Python path's). */
static Py_ssize_t respond(const unsigned char *w, const Question *q, unsigned rcode, long an,
                          long ns, PyObject *const *bodies, int nbodies, long payload,
                          unsigned char *out, Py_ssize_t cap) {
    Py_ssize_t total = q->end + (q->edns ? 11 : 0);
    for (int k = 0; k < nbodies; k++) total += PyBytes_GET_SIZE(bodies[k]);
    if (total > q->limit || total > cap || an < 0 || an > 0xFFFF || ns < 0 || ns > 0xFFFF)
        return 0;
    unsigned flags = QR_AA | (((unsigned)w[2] << 8 | w[3]) & ECHO) | rcode;
    unsigned char *p = out;
    p[0] = w[0];
    p[1] = w[1];
    p[2] = (unsigned char)(flags >> 8);
    p[3] = (unsigned char)flags;
    p[4] = 0;
    p[5] = 1;
    p[6] = (unsigned char)(an >> 8);
    p[7] = (unsigned char)an;
    p[8] = (unsigned char)(ns >> 8);
    p[9] = (unsigned char)ns;
    p[10] = 0;
    p[11] = q->edns ? 1 : 0;
    memcpy(p + 12, w + 12, (size_t)(q->end - 12));
    p += q->end;
    for (int k = 0; k < nbodies; k++) {
        memcpy(p, PyBytes_AS_STRING(bodies[k]), (size_t)PyBytes_GET_SIZE(bodies[k]));
        p += PyBytes_GET_SIZE(bodies[k]);
    }
    if (q->edns) { /* our OPT: root owner, our payload, extended rcode 0, version 0, DO echoed */
        p[0] = 0;
        p[1] = 0;
        p[2] = 41;
        p[3] = (unsigned char)(payload >> 8);
        p[4] = (unsigned char)payload;
        p[5] = p[6] = 0;
        p[7] = q->do_bit ? 0x80 : 0;
        p[8] = p[9] = p[10] = 0;
        p += 11;
    }
    return p - out;
}

/* The response cache: ``w`` with its ID is ``out``, or 0. */
static Py_ssize_t cached(const unsigned char *w, Py_ssize_t n, PyObject *cache,
                         unsigned char *out, Py_ssize_t cap) {
    PyObject *key = PyBytes_FromStringAndSize((const char *)w + 2, n - 2);
    if (key == NULL) return -1;
    PyObject *hit = PyDict_GetItemWithError(cache, key);
    Py_DECREF(key);
    if (hit == NULL) return PyErr_Occurred() ? -1 : 0;
    if (!PyBytes_CheckExact(hit) || PyBytes_GET_SIZE(hit) + 2 > cap) return 0;
    out[0] = w[0];
    out[1] = w[1];
    memcpy(out + 2, PyBytes_AS_STRING(hit), (size_t)PyBytes_GET_SIZE(hit));
    return PyBytes_GET_SIZE(hit) + 2;
}

static Py_ssize_t names_lane(const unsigned char *w, Py_ssize_t n, PyObject *names,
                             long payload, unsigned char *out, Py_ssize_t cap);
static Py_ssize_t nx_lane(const unsigned char *w, Py_ssize_t n, PyObject *exist, long payload,
                          unsigned char *out, Py_ssize_t cap);



/* SHA-1 (FIPS 180-4 6.1), for NSEC3 owner hashes (RFC 5155 5) only: the next closer name
 * of a random name is hashed on every NXDOMAIN, and a call into hashlib per hash cost
 * more than the rest of the lane.  Inputs are at most a name and a salt (510 octets). */
static uint32_t rol32(uint32_t x, int n) { return (x << n) | (x >> (32 - n)); }

static void sha1_block(uint32_t h[5], const unsigned char *p) {
    uint32_t w[80];
    for (int t = 0; t < 16; t++)
        w[t] = (uint32_t)p[4 * t] << 24 | (uint32_t)p[4 * t + 1] << 16 |
               (uint32_t)p[4 * t + 2] << 8 | p[4 * t + 3];
    for (int t = 16; t < 80; t++) w[t] = rol32(w[t - 3] ^ w[t - 8] ^ w[t - 14] ^ w[t - 16], 1);
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
    for (int t = 0; t < 80; t++) {
        uint32_t f, k;
        if (t < 20) {
            f = (b & c) | (~b & d);
            k = 0x5A827999;
        } else if (t < 40) {
            f = b ^ c ^ d;
            k = 0x6ED9EBA1;
        } else if (t < 60) {
            f = (b & c) | (b & d) | (c & d);
            k = 0x8F1BBCDC;
        } else {
            f = b ^ c ^ d;
            k = 0xCA62C1D6;
        }
        uint32_t tmp = rol32(a, 5) + f + e + k + w[t];
        e = d;
        d = c;
        c = rol32(b, 30);
        b = a;
        a = tmp;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
}

/* The SHA-1 digest of ``a`` followed by ``b`` (together at most 1024 octets). */
static void sha1_2(const unsigned char *a, size_t alen, const unsigned char *b, size_t blen,
                   unsigned char out[20]) {
    unsigned char buf[1024 + 128];
    size_t len = alen + blen;
    memcpy(buf, a, alen);
    memcpy(buf + alen, b, blen);
    size_t padded = (len + 8) / 64 * 64 + 64;
    buf[len] = 0x80;
    memset(buf + len + 1, 0, padded - len - 1);
    uint64_t bits = (uint64_t)len * 8;
    for (int i = 0; i < 8; i++) buf[padded - 1 - i] = (unsigned char)(bits >> (8 * i));
    uint32_t h[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
    for (size_t off = 0; off < padded; off += 64) sha1_block(h, buf + off);
    for (int i = 0; i < 5; i++) {
        out[4 * i] = (unsigned char)(h[i] >> 24);
        out[4 * i + 1] = (unsigned char)(h[i] >> 16);
        out[4 * i + 2] = (unsigned char)(h[i] >> 8);
        out[4 * i + 3] = (unsigned char)h[i];
    }
}

/* The NSEC3 hash (RFC 5155 5) of the lower-case wire name ``name``: 0, or -1 when the
 * salt is too long to be an NSEC3 salt. */
static int nsec3_hash(const unsigned char *name, size_t nlen, const unsigned char *salt,
                      size_t slen, long iterations, unsigned char out[20]) {
    if (slen > 255 || nlen > 255) return -1;
    sha1_2(name, nlen, salt, slen, out);
    for (long i = 0; i < iterations; i++) {
        unsigned char prev[20];
        memcpy(prev, out, 20);
        sha1_2(prev, 20, salt, slen, out);
    }
    return 0;
}

/* ------------------------------------------------------------------------------------- */
/* The NXDOMAIN lane: WireTable._find + _negative for a name that does not exist below a  */
/* closest encloser with no delegation, DNAME or wildcard in the way (NSEC and NSEC3).    */

/* The Python helpers the lane calls for what it has not seen yet (set by configure()). */
static PyObject *H_nsec_denial, *H_nsec3_denial, *H_encloser;

/* A plain query parsed the way WireTable.answer parses a name it has not seen: 1 if it is
 * one the byte path would answer at all, 0 if not. */
static int parse_plain(const unsigned char *w, Py_ssize_t n, long payload, Question *q) {
    if (!plain_header(w, n, q)) return 0;
    Py_ssize_t pos = 12;
    int k = 0;
    unsigned len = w[pos];
    while (len) {
        if (len > 63 || k >= 127) return 0;
        q->starts[k++] = pos - 12;
        pos += len + 1;
        if (pos >= n) return 0;
        len = w[pos];
    }
    q->nlabels = k;
    q->starts[k] = pos - 12;
    q->qend = pos + 1;
    q->lname_len = q->qend - 12;
    if (q->lname_len > 255) return 0;
    for (Py_ssize_t i = 0; i < q->lname_len; i++) {
        unsigned char c = w[12 + i];
        q->lname[i] = (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
    }
    return plain_tail(w, n, payload, q);
}

/* The suffix of the question name from label ``i`` (the root: nlabels) as bytes. */
static PyObject *suffix(const Question *q, int i) {
    return PyBytes_FromStringAndSize((const char *)q->lname + q->starts[i],
                                     q->lname_len - q->starts[i]);
}

/* The canonical-order sort key (wiretable.sort_key) of the name made of the question's
 * labels from ``first`` up, with a "*" label in front when ``star``: labels root first,
 * octets 0 and 1 escaped as 01 01 and 01 02, each label ended by 00, so that memcmp order
 * is RFC 4034 6.1 order. */
static Py_ssize_t sort_key(const Question *q, int first, int star, unsigned char *out) {
    unsigned char *p = out;
    *p++ = 0; /* the root label */
    for (int i = q->nlabels - 1; i >= first; i--) {
        const unsigned char *l = q->lname + q->starts[i];
        for (unsigned j = 1; j <= l[0]; j++) {
            unsigned char c = l[j];
            if (c <= 1) {
                *p++ = 1;
                *p++ = (unsigned char)(c + 1);
            } else {
                *p++ = c;
            }
        }
        *p++ = 0;
    }
    if (star) {
        *p++ = '*';
        *p++ = 0;
    }
    return p - out;
}

/* bisect.bisect_right over a sorted list of bytes. */
static Py_ssize_t bisect_bytes(PyObject *list, const unsigned char *key, Py_ssize_t klen) {
    Py_ssize_t lo = 0, hi = PyList_GET_SIZE(list);
    while (lo < hi) {
        Py_ssize_t mid = (lo + hi) / 2;
        PyObject *item = PyList_GET_ITEM(list, mid);
        Py_ssize_t ilen = PyBytes_GET_SIZE(item);
        int c = memcmp(key, PyBytes_AS_STRING(item), (size_t)(klen < ilen ? klen : ilen));
        if (c == 0) c = klen < ilen ? -1 : (klen > ilen ? 1 : 0);
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

/* bisect.bisect_right over a sorted list of ints; -1 on a Python error. */
static Py_ssize_t bisect_ints(PyObject *list, PyObject *key) {
    Py_ssize_t lo = 0, hi = PyList_GET_SIZE(list);
    while (lo < hi) {
        Py_ssize_t mid = (lo + hi) / 2;
        int lt = PyObject_RichCompareBool(key, PyList_GET_ITEM(list, mid), Py_LT);
        if (lt < 0) return -1;
        if (lt)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

/* ``memo[key]`` when the memo dict holds it, else ``helper(wz, arg)`` (which memoises it):
 * a new reference, or NULL with an exception set. */
static PyObject *memo_get(PyObject *memo, PyObject *key, PyObject *helper, PyObject *wz,
                          PyObject *arg) {
    if (memo != NULL && PyDict_CheckExact(memo)) {
        PyObject *got = PyDict_GetItemWithError(memo, key);
        if (got != NULL) return Py_NewRef(got);
        if (PyErr_Occurred()) return NULL;
    }
    return PyObject_CallFunctionObjArgs(helper, wz, arg, NULL);
}

/* memo_get for a (wire, record count) pair: a new reference to a checked 2-tuple, NULL
 * with an exception set, or NULL without one when the shape is not what we expect. */
static PyObject *memo_or_call(PyObject *memo, PyObject *key, PyObject *helper, PyObject *wz,
                              PyObject *arg) {
    PyObject *got = memo_get(memo, key, helper, wz, arg);
    if (got == NULL) return NULL;
    if (!PyTuple_CheckExact(got) || PyTuple_GET_SIZE(got) != 2 ||
        !PyBytes_CheckExact(PyTuple_GET_ITEM(got, 0)) || !PyLong_CheckExact(PyTuple_GET_ITEM(got, 1))) {
        Py_DECREF(got);
        return NULL;
    }
    return got;
}

#define MAX_PARTS 4

typedef struct {
    PyObject *parts[MAX_PARTS]; /* (wire, count) tuples, new references */
    int n;
} Parts;

static void parts_clear(Parts *p) {
    for (int i = 0; i < p->n; i++) Py_CLEAR(p->parts[i]);
    p->n = 0;
}

/* Append the (wire, count) pair memoised under ``key`` (a new reference, consumed; NULL
 * after a failed allocation), or made by ``helper(wz, arg)``, to ``parts``: 1, 0 when its
 * shape is not what we expect, -1 on a Python error. */
static int add_part(Parts *parts, PyObject *memo, PyObject *key, PyObject *helper, PyObject *wz,
                    PyObject *arg) {
    if (key == NULL) return -1;
    PyObject *got = memo_or_call(memo, key, helper, wz, arg);
    Py_DECREF(key);
    if (got == NULL) return PyErr_Occurred() ? -1 : 0;
    parts->parts[parts->n++] = got;
    return 1;
}

/* The NSEC proof of NXDOMAIN (wiretable._nsec_nxdomain): the NSEC covering the name and
 * the one covering the wildcard at the closest encloser (label ``ce``). 1 done, 0 defer,
 * -1 error. */
static int nsec_proof(const Question *q, int ce, PyObject *wz, Parts *parts) {
    unsigned char key[1024];
    PyObject *sorted = PyObject_GetAttr(wz, N.s_nsec_sort);
    if (sorted == NULL) return -1;
    if (!PyList_CheckExact(sorted) || PyList_GET_SIZE(sorted) == 0) {
        Py_DECREF(sorted);
        return 0;
    }
    Py_ssize_t size = PyList_GET_SIZE(sorted);
    Py_ssize_t first = bisect_bytes(sorted, key, sort_key(q, 0, 0, key)) - 1;
    Py_ssize_t second = bisect_bytes(sorted, key, sort_key(q, ce, 1, key)) - 1;
    Py_DECREF(sorted);
    if (first < 0) first += size; /* as Python's list[-1] */
    if (second < 0) second += size;
    PyObject *memo = PyObject_GetAttr(wz, N.s_nsec_denial);
    if (memo == NULL) return -1;
    int rc = 1;
    Py_ssize_t idx[2] = {first, second};
    for (int k = 0; k < (second == first ? 1 : 2) && rc == 1; k++) {
        PyObject *i = PyLong_FromSsize_t(idx[k]);
        rc = add_part(parts, memo, i, H_nsec_denial, wz, i);
    }
    Py_DECREF(memo);
    return rc;
}

/* The NSEC3 proof (wiretable._nsec3_nxdomain): the NSEC3 matching the closest provable
 * encloser, the one covering the next closer name and the one covering the wildcard, each
 * once.  1 done, 0 defer, -1 error. */
static int nsec3_proof(const Question *q, int ce, PyObject *wz, Parts *parts) {
    int rc = -1;
    PyObject *snap = NULL, *params = NULL, *digests = NULL, *owners = NULL, *enclosers = NULL;
    PyObject *ce_name = NULL, *known = NULL, *salt = NULL, *iters = NULL, *memo = NULL;
    snap = PyObject_GetAttr(wz, N.s_snap);
    if (snap == NULL) goto out;
    params = PyObject_GetAttr(snap, N.s_nsec3);
    if (params == NULL) goto out;
    digests = PyObject_GetAttr(wz, N.s_nsec3_digests);
    if (digests == NULL) goto out;
    owners = PyObject_GetAttr(wz, N.s_nsec3_owners);
    if (owners == NULL) goto out;
    rc = 0;
    if (params == Py_None || !PyList_CheckExact(digests) || PyList_GET_SIZE(digests) == 0 ||
        !PyList_CheckExact(owners) || PyList_GET_SIZE(owners) != PyList_GET_SIZE(digests))
        goto out;
    rc = -1;
    salt = PyObject_GetAttr(params, N.s_salt);
    if (salt == NULL) goto out;
    iters = PyObject_GetAttr(params, N.s_iterations);
    if (iters == NULL) goto out;
    rc = 0;
    if (!PyBytes_CheckExact(salt) || !PyLong_CheckExact(iters)) goto out;
    rc = -1;
    long iterations = PyLong_AsLong(iters);
    if (iterations == -1 && PyErr_Occurred()) goto out;
    /* (labels of the closest provable encloser with the root, its NSEC3 node or None,
     *  the node covering its wildcard or None), memoised by the encloser's wire name */
    enclosers = PyObject_GetAttr(wz, N.s_enclosers);
    if (enclosers == NULL) goto out;
    ce_name = suffix(q, ce);
    if (ce_name == NULL) goto out;
    known = memo_get(enclosers, ce_name, H_encloser, wz, ce_name);
    if (known == NULL) goto out;
    rc = 0;
    if (!PyTuple_CheckExact(known) || PyTuple_GET_SIZE(known) != 3 ||
        !PyLong_CheckExact(PyTuple_GET_ITEM(known, 0)) || iterations < 0)
        goto out;
    rc = -1;
    long plen = PyLong_AsLong(PyTuple_GET_ITEM(known, 0));
    if (plen == -1 && PyErr_Occurred()) goto out;
    rc = 0;
    /* The next closer name: the question's suffix one label longer than the encloser. */
    long nc_index = (long)q->nlabels - plen;
    if (plen < 1 || nc_index < 0 || nc_index >= q->nlabels) goto out;
    unsigned char digest[20];
    if (nsec3_hash(q->lname + q->starts[nc_index], (size_t)(q->lname_len - q->starts[nc_index]),
                   (const unsigned char *)PyBytes_AS_STRING(salt), (size_t)PyBytes_GET_SIZE(salt),
                   iterations, digest) < 0)
        goto out;
    Py_ssize_t i = bisect_bytes(digests, digest, 20) - 1;
    if (i < 0) i += PyList_GET_SIZE(digests); /* as Python's list[-1] */
    PyObject *cover = PyList_GET_ITEM(owners, i);
    Py_INCREF(cover);
    PyObject *nodes[3] = {PyTuple_GET_ITEM(known, 1), cover, PyTuple_GET_ITEM(known, 2)};
    rc = -1;
    memo = PyObject_GetAttr(wz, N.s_nsec3_denial);
    if (memo == NULL) {
        Py_DECREF(cover);
        goto out;
    }
    rc = 1;
    for (int k = 0; k < 3 && rc == 1; k++) {
        PyObject *node = nodes[k];
        if (node == Py_None || (k >= 1 && node == nodes[0]) || (k == 2 && node == nodes[1]))
            continue;
        rc = add_part(parts, memo, PyLong_FromVoidPtr(node), H_nsec3_denial, wz, node);
    }
    Py_DECREF(cover);
out:
    Py_XDECREF(snap);
    Py_XDECREF(params);
    Py_XDECREF(digests);
    Py_XDECREF(owners);
    Py_XDECREF(enclosers);
    Py_XDECREF(ce_name);
    Py_XDECREF(known);
    Py_XDECREF(salt);
    Py_XDECREF(iters);
    Py_XDECREF(memo);
    return rc;
}

/* NXDOMAIN for a name below a closest encloser that ``exist`` (WireTable.exist: every
 * existing name -> its zone's ZoneSlot when NXDOMAIN below it needs no delegation, DNAME
 * or wildcard handling, else None) marks plain.  The response length, 0 (Python's) or -1. */
static Py_ssize_t nx_lane(const unsigned char *w, Py_ssize_t n, PyObject *exist, long payload,
                          unsigned char *out, Py_ssize_t cap) {
    Question q;
    if (!parse_plain(w, n, payload, &q)) return 0;
    /* The name itself exists (NODATA, an empty non-terminal...): Python's. */
    PyObject *name = suffix(&q, 0);
    if (name == NULL) return -1;
    int there = PyDict_Contains(exist, name);
    Py_DECREF(name);
    if (there != 0) return there < 0 ? -1 : 0;
    int ce = -1;
    PyObject *wz = NULL;
    for (int i = 1; i <= q.nlabels; i++) {
        PyObject *s = suffix(&q, i);
        if (s == NULL) return -1;
        wz = PyDict_GetItemWithError(exist, s);
        Py_DECREF(s);
        if (wz != NULL) {
            ce = i;
            break;
        }
        if (PyErr_Occurred()) return -1;
    }
    if (wz == NULL || wz == Py_None) return 0; /* not ours, or not plain: Python's */
    /* ``exist`` holds the zone's ZoneSlot, whose ``current`` is the version served: every
     * read below is of that one WireZone, whatever replaces it meanwhile. */
    wz = PyObject_GetAttr(wz, N.s_current);
    if (wz == NULL) return -1;
    Py_ssize_t result = -1;
    Parts parts = {{NULL}, 0};
    PyObject *soa = NULL;
    PyObject *v = PyObject_GetAttr(wz, N.s_signed);
    if (v == NULL) goto done;
    int sig_do = q.do_bit ? PyObject_IsTrue(v) : 0;
    Py_DECREF(v);
    if (sig_do < 0) goto done;
    int got = 1;
    if (sig_do) {
        v = PyObject_GetAttr(wz, N.s_nsec);
        if (v == NULL) goto done;
        int nsec = PyObject_IsTrue(v);
        Py_DECREF(v);
        if (nsec < 0) goto done;
        got = nsec ? nsec_proof(&q, ce, wz, &parts) : nsec3_proof(&q, ce, wz, &parts);
        if (got < 0) goto done;
    }
    result = 0;
    if (got == 0) goto done;
    result = -1;
    soa = PyObject_GetAttr(wz, sig_do ? N.s_soa_sig : N.s_soa);
    if (soa == NULL) goto done;
    result = 0;
    if (!PyTuple_CheckExact(soa) || PyTuple_GET_SIZE(soa) != 2 ||
        !PyBytes_CheckExact(PyTuple_GET_ITEM(soa, 0)))
        goto done;
    PyObject *bodies[MAX_PARTS + 1] = {PyTuple_GET_ITEM(soa, 0)};
    long count = PyLong_AsLong(PyTuple_GET_ITEM(soa, 1));
    for (int k = 0; k < parts.n; k++) {
        count += PyLong_AsLong(PyTuple_GET_ITEM(parts.parts[k], 1));
        bodies[k + 1] = PyTuple_GET_ITEM(parts.parts[k], 0);
    }
    if (PyErr_Occurred()) {
        result = -1;
        goto done;
    }
    result = respond(w, &q, 3 /* NXDOMAIN */, 0, count, bodies, parts.n + 1, payload, out, cap);
done:
    parts_clear(&parts);
    Py_XDECREF(soa);
    Py_DECREF(wz);
    return result;
}

/*
 * Answer the query ``w`` (``n`` octets) from the names lane, the NXDOMAIN lane or the
 * response cache into ``out`` (capacity ``cap``).  Returns the response length, 0 when
 * Python must answer, -1 on a Python error.  *kind is set to 1 for a cache hit, 2 for a
 * names-lane answer and 3 for an NXDOMAIN-lane answer.  The lanes go first: for a query
 * a lane and the cache can both answer they give the same bytes (the cache holds the byte
 * path's responses for the same zone set), and a lane needs no copy of the query as a key.
 */
static Py_ssize_t answer_one(const unsigned char *w, Py_ssize_t n, PyObject *cache,
                             PyObject *names, PyObject *exist, long payload,
                             unsigned char *out, Py_ssize_t cap, int *kind) {
    *kind = 0;
    if (n < 12) return 0;
    Py_ssize_t len = 0;
    /* An empty lane table cannot answer: skip its lookups (the resolver's AnswerCache
     * has only the response cache). */
    if (names != NULL && PyDict_GET_SIZE(names) > 0) {
        len = names_lane(w, n, names, payload, out, cap);
        if (len != 0) {
            *kind = len > 0 ? 2 : 0;
            return len;
        }
    }
    if (exist != NULL && PyDict_GET_SIZE(exist) > 0) {
        len = nx_lane(w, n, exist, payload, out, cap);
        if (len != 0) {
            *kind = len > 0 ? 3 : 0;
            return len;
        }
    }
    if (cache != NULL) {
        len = cached(w, n, cache, out, cap);
        *kind = len > 0 ? 1 : 0;
    }
    return len;
}

/* WireTable.answer, the branch with a hit in ``names``: the response length, 0 (not
 * answered here) or -1 (a Python error). */
static Py_ssize_t names_lane(const unsigned char *w, Py_ssize_t n, PyObject *names,
                             long payload, unsigned char *out, Py_ssize_t cap) {
    Question q;
    if (!plain_header(w, n, &q)) return 0;
    const unsigned char *zero = memchr(w + 12, 0, (size_t)(n - 12));
    if (zero == NULL) return 0;
    q.qend = (zero - w) + 1;
    Py_ssize_t nlen = q.qend - 12;
    PyObject *lname = PyBytes_FromStringAndSize(NULL, nlen);
    if (lname == NULL) return -1;
    unsigned char *lp = (unsigned char *)PyBytes_AS_STRING(lname);
    for (Py_ssize_t i = 0; i < nlen; i++) {
        unsigned char c = w[12 + i];
        lp[i] = (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c; /* bytes.lower() */
    }
    PyObject *hit = PyDict_GetItemWithError(names, lname);
    Py_DECREF(lname);
    if (hit == NULL) return PyErr_Occurred() ? -1 : 0;
    if (!plain_tail(w, n, payload, &q)) return 0;
    /* (zone, node, wires, counts, RRSIG wires or None, RRSIG counts): wiretable.names_entry */
    if (!PyTuple_CheckExact(hit) || PyTuple_GET_SIZE(hit) != 6) return 0;
    PyObject *wires = PyTuple_GET_ITEM(hit, 2), *sig_wires = PyTuple_GET_ITEM(hit, 4);
    if (!PyDict_CheckExact(wires) || (sig_wires != Py_None && !PyDict_CheckExact(sig_wires)))
        return 0; /* not WireRRsets: the Python lane's */
    PyObject *key = PyLong_FromUnsignedLong(q.qtype);
    if (key == NULL) return -1;
    Py_ssize_t result = 0;
    PyObject *sig = NULL;
    long an = 1, sig_an = 1;
    PyObject *body = PyDict_GetItemWithError(wires, key);
    if (body == NULL) {
        if (PyErr_Occurred()) goto error;
        goto done; /* NODATA, CNAME, ...: Python's */
    }
    if (!PyBytes_CheckExact(body)) goto done;
    an = rr_count(PyTuple_GET_ITEM(hit, 3), key);
    if (an < 0) goto check;
    if (q.do_bit && sig_wires != Py_None) {
        sig = PyDict_GetItemWithError(sig_wires, key);
        if (sig == NULL && PyErr_Occurred()) goto error;
        if (sig != NULL) {
            if (!PyBytes_CheckExact(sig)) goto done;
            sig_an = rr_count(PyTuple_GET_ITEM(hit, 5), key);
            if (sig_an < 0) goto check;
        }
    }
    PyObject *bodies[2] = {body, sig};
    result = respond(w, &q, 0, an + (sig ? sig_an : 0), 0, bodies, sig ? 2 : 1, payload, out, cap);
    goto done;
check: /* rr_count: an error, or counts of an unexpected shape (Python's) */
    if (!PyErr_Occurred()) goto done;
error:
    result = -1;
done:
    Py_DECREF(key);
    return result;
}

/* ------------------------------------------------------------------------------------- */
/* Loop: one per socket (each listener thread has its own buffers).                       */

typedef struct {
    PyObject_HEAD int fd;
    unsigned char *rbuf; /* BATCH x RECV_CAP */
    unsigned char *sbuf; /* BATCH x SEND_CAP */
    struct sockaddr_storage addr[BATCH];
    struct iovec riov[BATCH];
    struct mmsghdr rmsg[BATCH];
    struct iovec siov[BATCH];
    struct mmsghdr smsg[BATCH];
    unsigned long long dropped;
    Py_ssize_t cache_limit;
    Py_buffer counts_buf; /* the process's slot of the query counters (buf NULL: none) */
    uint64_t *counts;
} Loop;

static void Loop_dealloc(Loop *self) {
    PyMem_RawFree(self->rbuf);
    PyMem_RawFree(self->sbuf);
    if (self->counts_buf.obj != NULL) PyBuffer_Release(&self->counts_buf);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* The row of a message's question type: the name skipped label by label (a pointer ends
 * it), QT_NONE when there is no question or it is cut short. */
static unsigned qtype_row(const unsigned char *w, Py_ssize_t n) {
    if (n < 12 || !(w[4] | w[5])) return QT_NONE;
    Py_ssize_t pos = 12;
    for (;;) {
        if (pos >= n) return QT_NONE;
        unsigned len = w[pos];
        if (len == 0) {
            pos += 1;
            break;
        }
        if (len >= 0xC0) {
            pos += 2;
            break;
        }
        pos += (Py_ssize_t)len + 1;
    }
    if (pos + 2 > n) return QT_NONE;
    unsigned qt = (unsigned)w[pos] << 8 | w[pos + 1];
    return qt < QT_DIRECT ? qt : QT_OTHER;
}

/* Count one response sent (its question is the query's). */
static inline void count_response(Loop *self, const unsigned char *r, Py_ssize_t n) {
    uint64_t *c = self->counts;
    if (c == NULL || n < 4) return;
    c[qtype_row(r, n) * RC_SLOTS + (r[3] & 0x0F)]++;
    if (r[2] & 0x02) c[TRUNC_WORD]++;
}

static int Loop_init(Loop *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"fd", "cache_limit", "counts", NULL};
    int fd;
    Py_ssize_t cache_limit;
    PyObject *counts = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "in|O", kwlist, &fd, &cache_limit, &counts))
        return -1;
    if (self->counts_buf.obj != NULL) PyBuffer_Release(&self->counts_buf);
    self->counts = NULL;
    if (counts != Py_None) {
        if (PyObject_GetBuffer(counts, &self->counts_buf, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) <
            0)
            return -1;
        if (self->counts_buf.len < (Py_ssize_t)(SLOT_WORDS * sizeof(uint64_t)) ||
            ((uintptr_t)self->counts_buf.buf % sizeof(uint64_t)) != 0) {
            PyBuffer_Release(&self->counts_buf);
            PyErr_SetString(PyExc_ValueError,
                            "counts must be a writable, 8-byte aligned buffer of SLOT_WORDS words");
            return -1;
        }
        self->counts = (uint64_t *)self->counts_buf.buf;
    }
    if (cache_limit < 1) {
        PyErr_SetString(PyExc_ValueError, "cache_limit must be positive");
        return -1;
    }
    self->cache_limit = cache_limit;
    if (fd < 0) {
        PyErr_SetString(PyExc_ValueError, "fd must be an open socket");
        return -1;
    }
    self->fd = fd;
    if (self->rbuf == NULL) self->rbuf = PyMem_RawMalloc((size_t)BATCH * RECV_CAP);
    if (self->sbuf == NULL) self->sbuf = PyMem_RawMalloc((size_t)BATCH * SEND_CAP);
    if (self->rbuf == NULL || self->sbuf == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    self->dropped = 0;
    return 0;
}

static PyObject *address(const struct sockaddr_storage *sa, socklen_t len) {
    char host[INET6_ADDRSTRLEN];
    if (sa->ss_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
        if (inet_ntop(AF_INET, &a->sin_addr, host, sizeof host) == NULL)
            return PyErr_SetFromErrno(PyExc_OSError);
        return Py_BuildValue("(si)", host, ntohs(a->sin_port));
    }
    if (sa->ss_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
        if (inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host) == NULL)
            return PyErr_SetFromErrno(PyExc_OSError);
        return Py_BuildValue("(siII)", host, ntohs(a->sin6_port), ntohl(a->sin6_flowinfo),
                             a->sin6_scope_id);
    }
    Py_RETURN_NONE;
}

/* Send the first ``count`` prepared messages; failures (a full buffer, a gone peer) are
 * counted and skipped, as UDP may drop.  Called without the GIL. */
static void send_all(Loop *self, struct mmsghdr *msgs, int count) {
    int sent = 0;
    while (sent < count) {
        int r = sendmmsg(self->fd, msgs + sent, (unsigned)(count - sent), 0);
        if (r < 0) {
            if (errno == EINTR) continue;
            self->dropped++;
            sent++;
        } else {
            sent += r;
        }
    }
}

/* What one batch reads of the engine, once the datagrams are in (a reload may have
 * swapped the zone set while we waited): its response cache, then its byte path (the
 * order Engine.set_zones replaces them in), the byte path's names table and its answer
 * method, and the UDP payload we advertise.  New references. */
typedef struct {
    PyObject *cache, *names, *exist, *answer;
    long payload;
} Engine;

static void engine_clear(Engine *e) {
    Py_CLEAR(e->cache);
    Py_CLEAR(e->names);
    Py_CLEAR(e->exist);
    Py_CLEAR(e->answer);
}

static int engine_state(PyObject *engine, Engine *e) {
    e->cache = e->names = e->exist = e->answer = NULL;
    PyObject *wire = NULL, *pl = NULL;
    e->cache = PyObject_GetAttr(engine, N.s_udp_cache);
    if (e->cache == NULL) goto error;
    wire = PyObject_GetAttr(engine, N.s_wire);
    if (wire == NULL) goto error;
    e->names = PyObject_GetAttr(wire, N.s_names);
    if (e->names == NULL) goto error;
    e->exist = PyObject_GetAttr(wire, N.s_exist);
    if (e->exist == NULL) goto error;
    e->answer = PyObject_GetAttr(wire, N.s_answer);
    if (e->answer == NULL) goto error;
    pl = PyObject_GetAttr(engine, N.s_udp_payload);
    if (pl == NULL) goto error;
    e->payload = PyLong_AsLong(pl);
    if (e->payload == -1 && PyErr_Occurred()) goto error;
    if (!PyDict_Check(e->cache) || !PyDict_Check(e->names) || !PyDict_Check(e->exist)) {
        PyErr_SetString(PyExc_TypeError,
                        "engine.udp_cache, engine.wire.names and .exist must be dicts");
        goto error;
    }
    Py_DECREF(wire);
    Py_DECREF(pl);
    return 0;
error:
    engine_clear(e);
    Py_XDECREF(wire);
    Py_XDECREF(pl);
    return -1;
}

/* The byte path (engine.wire.answer(query, False, payload)) for a datagram C did not
 * answer: its response copied into ``out`` and kept in the response cache, as the Python
 * loop does.  0: Python's to answer (None: the general path; an exception: Python calls
 * it again and logs it). */
static Py_ssize_t byte_path(Loop *self, Engine *e, const unsigned char *w, Py_ssize_t n,
                            unsigned char *out, Py_ssize_t cap) {
    PyObject *q = PyBytes_FromStringAndSize((const char *)w, n);
    if (q == NULL) return -1;
    PyObject *args[3] = {q, Py_False, NULL};
    args[2] = PyLong_FromLong(e->payload);
    if (args[2] == NULL) {
        Py_DECREF(q);
        return -1;
    }
    PyObject *r = PyObject_Vectorcall(e->answer, args, 3, NULL);
    Py_DECREF(args[2]);
    Py_ssize_t len = 0;
    if (r == NULL) {
        PyErr_Clear();
    } else if (PyBytes_CheckExact(r) && PyBytes_GET_SIZE(r) >= 2 &&
               PyBytes_GET_SIZE(r) <= cap) {
        len = PyBytes_GET_SIZE(r);
        memcpy(out, PyBytes_AS_STRING(r), (size_t)len);
        PyObject *key = PyBytes_FromStringAndSize((const char *)w + 2, n - 2);
        PyObject *val = PyBytes_FromStringAndSize(PyBytes_AS_STRING(r) + 2, len - 2);
        if (key == NULL || val == NULL) {
            len = -1;
        } else {
            if (PyDict_GET_SIZE(e->cache) >= self->cache_limit) PyDict_Clear(e->cache);
            if (PyDict_SetItem(e->cache, key, val) < 0) len = -1;
        }
        Py_XDECREF(key);
        Py_XDECREF(val);
    }
    Py_XDECREF(r);
    Py_DECREF(q);
    return len;
}

static PyObject *Loop_serve(Loop *self, PyObject *engine) {
    if (H_encloser == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "_udpfast.configure() was not called");
        return NULL;
    }
    for (int i = 0; i < BATCH; i++) {
        self->riov[i].iov_base = self->rbuf + (size_t)i * RECV_CAP;
        self->riov[i].iov_len = RECV_CAP;
        memset(&self->rmsg[i].msg_hdr, 0, sizeof(struct msghdr));
        self->rmsg[i].msg_hdr.msg_iov = &self->riov[i];
        self->rmsg[i].msg_hdr.msg_iovlen = 1;
        self->rmsg[i].msg_hdr.msg_name = &self->addr[i];
        self->rmsg[i].msg_hdr.msg_namelen = sizeof(self->addr[i]);
    }
    int n;
    Py_BEGIN_ALLOW_THREADS n = recvmmsg(self->fd, self->rmsg, BATCH, MSG_WAITFORONE, NULL);
    Py_END_ALLOW_THREADS if (n < 0) return PyErr_SetFromErrno(PyExc_OSError);

    Engine e;
    if (engine_state(engine, &e) < 0) return NULL;
    PyObject *misses = PyList_New(0);
    if (misses == NULL) goto fail;
    long hits = 0, fast = 0, nx = 0, bytepath = 0;
    int eof = n == 0, ns = 0;
    for (int i = 0; i < n; i++) {
        struct msghdr *h = &self->rmsg[i].msg_hdr;
        const unsigned char *data = self->rbuf + (size_t)i * RECV_CAP;
        Py_ssize_t len = self->rmsg[i].msg_len;
        if (h->msg_namelen == 0) { /* shut down (Linux returns an empty message) */
            eof = 1;
            continue;
        }
        unsigned char *out = self->sbuf + (size_t)ns * SEND_CAP;
        int kind = 0;
        Py_ssize_t rlen = 0;
        if (!(h->msg_flags & MSG_TRUNC)) {
            rlen = answer_one(data, len, e.cache, e.names, e.exist, e.payload, out, SEND_CAP,
                              &kind);
            if (rlen < 0) { /* a Python error in a lookup: the byte path decides */
                PyErr_Clear();
                rlen = 0;
            }
            if (rlen == 0) {
                rlen = byte_path(self, &e, data, len, out, SEND_CAP);
                if (rlen < 0) goto fail;
                kind = rlen > 0 ? 4 : 0;
            }
        }
        if (rlen > 0) {
            count_response(self, out, rlen);
            hits += kind == 1;
            fast += kind == 2;
            nx += kind == 3;
            bytepath += kind == 4;
            self->siov[ns].iov_base = out;
            self->siov[ns].iov_len = (size_t)rlen;
            memset(&self->smsg[ns].msg_hdr, 0, sizeof(struct msghdr));
            self->smsg[ns].msg_hdr.msg_iov = &self->siov[ns];
            self->smsg[ns].msg_hdr.msg_iovlen = 1;
            self->smsg[ns].msg_hdr.msg_name = &self->addr[i];
            self->smsg[ns].msg_hdr.msg_namelen = h->msg_namelen;
            ns++;
            continue;
        }
        PyObject *q = PyBytes_FromStringAndSize((const char *)data, len);
        PyObject *a = address(&self->addr[i], h->msg_namelen);
        PyObject *raw = PyBytes_FromStringAndSize((const char *)&self->addr[i], h->msg_namelen);
        PyObject *t = (q && a && raw) ? PyTuple_Pack(3, q, a, raw) : NULL;
        Py_XDECREF(q);
        Py_XDECREF(a);
        Py_XDECREF(raw);
        if (t == NULL || PyList_Append(misses, t) < 0) {
            Py_XDECREF(t);
            goto fail;
        }
        Py_DECREF(t);
    }
    engine_clear(&e);
    if (ns) {
        Py_BEGIN_ALLOW_THREADS send_all(self, self->smsg, ns);
        Py_END_ALLOW_THREADS
    }
    return Py_BuildValue("(NllllN)", misses, hits, fast, nx, bytepath, PyBool_FromLong(eof));
fail:
    Py_XDECREF(misses);
    engine_clear(&e);
    return NULL;
}

static PyObject *Loop_send(Loop *self, PyObject *arg) {
    /* replies: list of (response bytes, raw sockaddr bytes) */
    if (!PyList_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "send() takes a list of (wire, address) tuples");
        return NULL;
    }
    PyObject *replies = PySequence_List(arg); /* our own list: nobody mutates it meanwhile */
    if (replies == NULL) return NULL;
    Py_ssize_t total = PyList_GET_SIZE(replies), done = 0;
    struct mmsghdr msgs[BATCH];
    struct iovec iov[BATCH];
    while (done < total) {
        int k = 0;
        for (; k < BATCH && done + k < total; k++) {
            PyObject *t = PyList_GET_ITEM(replies, done + k);
            if (!PyTuple_CheckExact(t) || PyTuple_GET_SIZE(t) != 2 ||
                !PyBytes_CheckExact(PyTuple_GET_ITEM(t, 0)) ||
                !PyBytes_CheckExact(PyTuple_GET_ITEM(t, 1))) {
                Py_DECREF(replies);
                PyErr_SetString(PyExc_TypeError, "send() takes (bytes, bytes) tuples");
                return NULL;
            }
            PyObject *wire = PyTuple_GET_ITEM(t, 0), *addr = PyTuple_GET_ITEM(t, 1);
            iov[k].iov_base = PyBytes_AS_STRING(wire);
            iov[k].iov_len = (size_t)PyBytes_GET_SIZE(wire);
            count_response(self, (const unsigned char *)PyBytes_AS_STRING(wire),
                           PyBytes_GET_SIZE(wire));
            memset(&msgs[k].msg_hdr, 0, sizeof(struct msghdr));
            msgs[k].msg_hdr.msg_iov = &iov[k];
            msgs[k].msg_hdr.msg_iovlen = 1;
            msgs[k].msg_hdr.msg_name = PyBytes_AS_STRING(addr);
            msgs[k].msg_hdr.msg_namelen = (socklen_t)PyBytes_GET_SIZE(addr);
        }
        Py_BEGIN_ALLOW_THREADS send_all(self, msgs, k);
        Py_END_ALLOW_THREADS done += k;
    }
    Py_DECREF(replies);
    Py_RETURN_NONE;
}

static PyObject *Loop_dropped(Loop *self, void *closure) {
    (void)closure;
    return PyLong_FromUnsignedLongLong(self->dropped);
}

static PyMethodDef Loop_methods[] = {
    {"serve", (PyCFunction)Loop_serve, METH_O,
     "serve(engine) -> (misses, cache_hits, names_answers, nxdomain_answers,\n"
     "                  byte_path_answers, eof)\n\n"
     "Wait for at least one datagram, take up to a batch, answer each from the names lane\n"
     "(engine.wire.names), the NXDOMAIN lane (engine.wire.exist), the response cache\n"
     "(engine.udp_cache) or the byte path\n"
     "(engine.wire.answer, its answers cached), send those, and return the rest as\n"
     "(query, address, raw address) for the general path."},
    {"send", (PyCFunction)Loop_send, METH_O,
     "send([(response, raw address), ...]): send Python's answers in batches (counted as\n"
     "the loop's own)."},
    {NULL, NULL, 0, NULL}};

static PyGetSetDef Loop_getset[] = {
    {"dropped", (getter)Loop_dropped, NULL, "replies the kernel refused (UDP may drop)", NULL},
    {NULL, NULL, NULL, NULL, NULL}};

static PyTypeObject LoopType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "dnsseal.server._udpfast.Loop",
    .tp_basicsize = sizeof(Loop),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Loop(fd, cache_limit, counts=None): the datagram loop of one UDP socket\n"
              "(recvmmsg/sendmmsg); counts: the process's slot of the query counters\n"
              "(a writable buffer of SLOT_WORDS 64-bit words), added to per response sent.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Loop_init,
    .tp_dealloc = (destructor)Loop_dealloc,
    .tp_methods = Loop_methods,
    .tp_getset = Loop_getset,
};

/* ------------------------------------------------------------------------------------- */

static PyObject *configure(PyObject *mod, PyObject *args) {
    (void)mod;
    PyObject *nsec_denial, *nsec3_denial, *encloser;
    if (!PyArg_ParseTuple(args, "OOO", &nsec_denial, &nsec3_denial, &encloser)) return NULL;
    if (!PyCallable_Check(nsec_denial) || !PyCallable_Check(nsec3_denial) ||
        !PyCallable_Check(encloser)) {
        PyErr_SetString(PyExc_TypeError, "configure(): the helpers must be callable");
        return NULL;
    }
    Py_XSETREF(H_nsec_denial, Py_NewRef(nsec_denial));
    Py_XSETREF(H_nsec3_denial, Py_NewRef(nsec3_denial));
    Py_XSETREF(H_encloser, Py_NewRef(encloser));
    Py_RETURN_NONE;
}

static PyObject *hash_nsec3(PyObject *mod, PyObject *args) {
    (void)mod;
    Py_buffer name, salt;
    long iterations;
    if (!PyArg_ParseTuple(args, "y*y*l", &name, &salt, &iterations)) return NULL;
    unsigned char digest[20];
    int rc = iterations < 0 ? -1
                            : nsec3_hash(name.buf, (size_t)name.len, salt.buf, (size_t)salt.len,
                                         iterations, digest);
    PyBuffer_Release(&name);
    PyBuffer_Release(&salt);
    if (rc < 0) {
        PyErr_SetString(PyExc_ValueError, "name and salt must be at most 255 octets");
        return NULL;
    }
    return PyBytes_FromStringAndSize((const char *)digest, 20);
}

static PyObject *answer(PyObject *mod, PyObject *args) {
    (void)mod;
    Py_buffer wire;
    PyObject *cache, *names, *exist;
    long payload;
    if (!PyArg_ParseTuple(args, "y*OO!O!l", &wire, &cache, &PyDict_Type, &names, &PyDict_Type,
                          &exist, &payload))
        return NULL;
    if (H_encloser == NULL) {
        PyBuffer_Release(&wire);
        PyErr_SetString(PyExc_RuntimeError, "_udpfast.configure() was not called");
        return NULL;
    }
    if (cache != Py_None && !PyDict_Check(cache)) {
        PyBuffer_Release(&wire);
        PyErr_SetString(PyExc_TypeError, "cache must be a dict or None");
        return NULL;
    }
    unsigned char out[SEND_CAP]; /* 64 KiB of stack: no allocation per call */
    int kind;
    Py_ssize_t len = answer_one(wire.buf, wire.len, cache == Py_None ? NULL : cache, names,
                                exist, payload, out, SEND_CAP, &kind);
    PyBuffer_Release(&wire);
    PyObject *res;
    if (len < 0)
        res = NULL;
    else if (len == 0)
        res = Py_NewRef(Py_None);
    else
        res = PyBytes_FromStringAndSize((const char *)out, len);
    return res;
}

static PyMethodDef module_methods[] = {
    {"configure", configure, METH_VARARGS,
     "configure(nsec_denial, nsec3_denial, encloser): the wiretable helpers the\n"
     "NXDOMAIN lane calls for what their memos do not hold yet (wiretable.NATIVE_HELPERS)."},
    {"nsec3_hash", hash_nsec3, METH_VARARGS,
     "nsec3_hash(name, salt, iterations) -> the 20-octet NSEC3 hash (RFC 5155 5) of the\n"
     "lower-case wire name, as the NXDOMAIN lane computes it."},
    {"answer", answer, METH_VARARGS,
     "answer(query, cache or None, names, exist, payload) -> response or None\n\n"
     "What Loop.serve answers for one UDP query, without a socket (None: Python answers)."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "dnsseal.server._udpfast",
                                    "The UDP datagram loop in C (see the file's comment).", -1,
                                    module_methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__udpfast(void) {
    static const struct {
        PyObject **slot;
        const char *name;
    } attrs[] = {
        {&N.s_signed, "signed"},
        {&N.s_udp_cache, "udp_cache"},
        {&N.s_wire, "wire"},
        {&N.s_names, "names"},
        {&N.s_udp_payload, "udp_payload"},
        {&N.s_answer, "answer"},
        {&N.s_exist, "exist"},
        {&N.s_nsec_sort, "nsec_sort"},
        {&N.s_nsec_denial, "nsec_denial"},
        {&N.s_nsec3_denial, "nsec3_denial"},
        {&N.s_enclosers, "enclosers"},
        {&N.s_snap, "snap"},
        {&N.s_nsec3, "nsec3"},
        {&N.s_nsec3_digests, "nsec3_digests"},
        {&N.s_nsec3_owners, "nsec3_owners"},
        {&N.s_salt, "salt"},
        {&N.s_iterations, "iterations"},
        {&N.s_soa, "soa"},
        {&N.s_soa_sig, "soa_sig"},
        {&N.s_nsec, "nsec"},
        {&N.s_current, "current"},
    };
    for (size_t i = 0; i < sizeof attrs / sizeof attrs[0]; i++) {
        *attrs[i].slot = PyUnicode_InternFromString(attrs[i].name);
        if (*attrs[i].slot == NULL) return NULL;
    }
    if (PyType_Ready(&LoopType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    Py_INCREF(&LoopType);
    if (PyModule_AddObject(m, "Loop", (PyObject *)&LoopType) < 0) {
        Py_DECREF(&LoopType);
        Py_DECREF(m);
        return NULL;
    }
    if (PyModule_AddIntConstant(m, "QT_SLOTS", QT_SLOTS) < 0 ||
        PyModule_AddIntConstant(m, "RC_SLOTS", RC_SLOTS) < 0 ||
        PyModule_AddIntConstant(m, "SLOT_WORDS", SLOT_WORDS) < 0 ||
        PyModule_AddIntConstant(m, "TRUNC_WORD", TRUNC_WORD) < 0 ||
        /* WireTable.exist holds ZoneSlots (read through ``current``), not WireZones */
        PyModule_AddIntConstant(m, "EXIST_SLOTS", 1) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}

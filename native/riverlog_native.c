/* riverlog native paths; native/twin.py is the reference for every function.
 *
 * Bounds rule: every read is preceded by a check against the end of the
 * buffer (or of the current record) written as "n > end - pos", never
 * "pos + n > end", so hostile lengths cannot overflow the arithmetic.
 */
#include "riverlog_native.h"

#include <string.h>

#define BATCH_HEADER_BYTES 61 /* record batch v2 header */
#define LOG_OVERHEAD 12       /* baseOffset + batchLength, outside batchLength */
#define MIN_HEADER_BYTES 2    /* a header is at least two one-byte varints */
#define WARM_SECTION_BYTES 8192

/* ---- big-endian reads; conversions to signed avoid implementation-defined casts */

static uint32_t rd_u32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t rd_u64(const uint8_t *p)
{
    return (uint64_t)rd_u32(p) << 32 | rd_u32(p + 4);
}

static int32_t as_i32(uint32_t u)
{
    return u > INT32_MAX ? -(int32_t)(~u) - 1 : (int32_t)u;
}

static int64_t as_i64(uint64_t u)
{
    return u > INT64_MAX ? -(int64_t)(~u) - 1 : (int64_t)u;
}

/* ---- scan_batches */

int rl_scan_batches(const uint8_t *buf, size_t len, int64_t max_batch_bytes,
                    rl_batch_info *out, size_t out_cap,
                    size_t *out_count, size_t *end)
{
    size_t pos = 0, n = 0;
    int status = RL_SCAN_OK;

    while (n < out_cap && pos < len) {
        const uint8_t *b = buf + pos;
        size_t remaining = len - pos;
        int64_t total;

        if (remaining < LOG_OVERHEAD) {
            status = RL_SCAN_TRUNCATED;
            break;
        }
        /* Length first: a torn tail with an impossible length is corruption. */
        total = (int64_t)as_i32(rd_u32(b + 8)) + LOG_OVERHEAD;
        if (total < BATCH_HEADER_BYTES || total > max_batch_bytes) {
            status = RL_SCAN_BAD_LENGTH;
            break;
        }
        if ((uint64_t)total > remaining) { /* total >= 61 also covers magic */
            status = RL_SCAN_TRUNCATED;
            break;
        }
        if (b[16] != 2) {
            status = RL_SCAN_BAD_MAGIC;
            break;
        }
        out[n].position = (int64_t)pos;
        out[n].length = total;
        out[n].base_offset = as_i64(rd_u64(b));
        out[n].partition_leader_epoch = as_i32(rd_u32(b + 12));
        out[n].last_offset_delta = as_i32(rd_u32(b + 23));
        out[n].max_timestamp = as_i64(rd_u64(b + 35));
        out[n].records_count = as_i32(rd_u32(b + 57));
        n++;
        pos += (size_t)total;
    }
    *out_count = n;
    *end = pos;
    return status;
}

/* ---- index lookups: Kafka's AbstractIndex search with the warm section.
 * The last 8 KiB of entries are searched first when the target is at or past
 * their first key: recent lookups then touch only pages likely resident. */

static int64_t offset_key(const uint8_t *buf, size_t slot)
{
    return (int64_t)rd_u32(buf + slot * 8);
}

static int64_t time_key(const uint8_t *buf, size_t slot)
{
    return as_i64(rd_u64(buf + slot * 12));
}

typedef int64_t (*key_fn)(const uint8_t *buf, size_t slot);

/* Largest slot in [lo, hi] with key <= target, given key(lo) <= target. */
static size_t largest_le(const uint8_t *buf, key_fn key, size_t lo, size_t hi,
                         int64_t target)
{
    while (lo < hi) {
        size_t mid = lo + (hi - lo + 1) / 2;
        if (key(buf, mid) <= target)
            lo = mid;
        else
            hi = mid - 1;
    }
    return lo;
}

static int64_t index_lookup(const uint8_t *buf, size_t entries, int64_t target,
                            key_fn key, size_t entry_bytes)
{
    size_t warm = WARM_SECTION_BYTES / entry_bytes;
    size_t first_warm;

    if (entries == 0)
        return -1;
    first_warm = entries - 1 > warm ? entries - 1 - warm : 0;
    if (key(buf, first_warm) <= target)
        return (int64_t)largest_le(buf, key, first_warm, entries - 1, target);
    if (key(buf, 0) > target)
        return -1;
    return (int64_t)largest_le(buf, key, 0, first_warm, target);
}

int64_t rl_offset_index_lookup(const uint8_t *buf, size_t entries, int64_t target)
{
    return index_lookup(buf, entries, target, offset_key, 8);
}

int64_t rl_time_index_lookup(const uint8_t *buf, size_t entries, int64_t target)
{
    return index_lookup(buf, entries, target, time_key, 12);
}

static int fits(const rl_pinned *b, int64_t entries, size_t entry_bytes)
{
    return entries >= 0 && (uint64_t)entries <= b->len / entry_bytes;
}

int64_t rl_offset_index_lookup_pinned(const rl_pinned *b, int64_t entries, int64_t target)
{
    if (!fits(b, entries, 8))
        return RL_INDEX_BAD_ENTRIES;
    return index_lookup(b->data, (size_t)entries, target, offset_key, 8);
}

int64_t rl_time_index_lookup_pinned(const rl_pinned *b, int64_t entries, int64_t target)
{
    if (!fits(b, entries, 12))
        return RL_INDEX_BAD_ENTRIES;
    return index_lookup(b->data, (size_t)entries, target, time_key, 12);
}

/* ---- varints: zigzag then LEB128, exactly Kafka's ByteUtils.
 * readVarint takes at most 5 bytes (the 5th must not continue) and drops the
 * bits that do not fit in 32; readVarlong takes at most 10 and keeps 64. */

static uint64_t zigzag(int64_t v)
{
    return v < 0 ? ~((uint64_t)v << 1) : (uint64_t)v << 1;
}

static int64_t unzigzag(uint64_t raw)
{
    return (raw & 1) ? -(int64_t)(raw >> 1) - 1 : (int64_t)(raw >> 1);
}

static size_t varint_size(int64_t v)
{
    uint64_t u = zigzag(v);
    size_t n = 1;
    while (u >= 0x80) {
        u >>= 7;
        n++;
    }
    return n;
}

static size_t put_varint(uint8_t *out, int64_t v)
{
    uint64_t u = zigzag(v);
    size_t n = 0;
    while (u >= 0x80) {
        out[n++] = (uint8_t)(u | 0x80);
        u >>= 7;
    }
    out[n++] = (uint8_t)u;
    return n;
}

/* Reads an unsigned LEB128 of at most max_bytes from buf[*pos, end). */
static int read_raw(const uint8_t *buf, size_t *pos, size_t end,
                    unsigned max_bytes, uint64_t *raw)
{
    uint64_t acc = 0;
    unsigned i;
    for (i = 0; i < max_bytes && *pos < end; i++) {
        uint8_t b = buf[(*pos)++];
        acc |= (uint64_t)(b & 0x7f) << (7 * i); /* bits past 64 fall off */
        if (!(b & 0x80)) {
            *raw = acc;
            return 0;
        }
    }
    return -1; /* unterminated within end, or longer than max_bytes */
}

static int read_varint(const uint8_t *buf, size_t *pos, size_t end, int32_t *out)
{
    uint64_t raw;
    if (read_raw(buf, pos, end, 5, &raw))
        return -1;
    *out = (int32_t)unzigzag(raw & 0xffffffffu); /* fits: zigzag of 32 bits */
    return 0;
}

static int read_varlong(const uint8_t *buf, size_t *pos, size_t end, int64_t *out)
{
    uint64_t raw;
    if (read_raw(buf, pos, end, 10, &raw))
        return -1;
    *out = unzigzag(raw);
    return 0;
}

/* A length-prefixed field (-1 = null) lying wholly inside [*pos, end). */
static int read_field(const uint8_t *buf, size_t *pos, size_t end,
                      size_t *field_pos, int32_t *field_len)
{
    if (read_varint(buf, pos, end, field_len) || *field_len < -1)
        return -1;
    *field_pos = 0;
    if (*field_len >= 0) {
        if ((size_t)*field_len > end - *pos)
            return -1;
        *field_pos = *pos;
        *pos += (size_t)*field_len;
    }
    return 0;
}

/* ---- encode_records */

/* Bytes a length-prefixed field takes; -1 on a length no record can hold. */
static int64_t field_size(int64_t n)
{
    if (n < -1 || n > INT32_MAX)
        return -1;
    return (int64_t)varint_size(n) + (n > 0 ? n : 0);
}

/* Writes a length-prefixed field, taking its bytes from the blob. */
static int put_field(uint8_t *out, size_t *w, int64_t n,
                     const uint8_t *blob, size_t blob_len, size_t *src)
{
    *w += put_varint(out + *w, n);
    if (n <= 0)
        return 0;
    if ((uint64_t)n > blob_len - *src)
        return -1;
    memcpy(out + *w, blob + *src, (size_t)n);
    *w += (size_t)n;
    *src += (size_t)n;
    return 0;
}

int64_t rl_encode_records(size_t count, const int64_t *timestamp_deltas,
                          const int64_t *key_lens, const int64_t *value_lens,
                          const int64_t *header_counts,
                          const int64_t *header_key_lens,
                          const int64_t *header_value_lens, size_t header_total,
                          const uint8_t *blob, size_t blob_len,
                          uint8_t *out, size_t out_cap)
{
    size_t w = 0, src = 0, h = 0, i, j;

    for (i = 0; i < count; i++) {
        int64_t hc = header_counts[i], body, need;
        size_t h_end;

        if (hc < 0 || (uint64_t)hc > header_total - h)
            return RL_ENCODE_BAD_ARGS;
        h_end = h + (size_t)hc;
        /* Size the body first: the record starts with its length. Each term
         * is below 2^32 and the sum is checked as it grows, so no overflow. */
        body = 1 + (int64_t)(varint_size(timestamp_deltas[i]) + varint_size((int64_t)i))
               + (int64_t)varint_size(hc);
        if (field_size(key_lens[i]) < 0 || field_size(value_lens[i]) < 0)
            return RL_ENCODE_BAD_ARGS;
        body += field_size(key_lens[i]) + field_size(value_lens[i]);
        for (j = h; j < h_end && body <= INT32_MAX; j++) {
            if (header_key_lens[j] < 0 || field_size(header_key_lens[j]) < 0
                || field_size(header_value_lens[j]) < 0)
                return RL_ENCODE_BAD_ARGS;
            body += field_size(header_key_lens[j]) + field_size(header_value_lens[j]);
        }
        if (body > INT32_MAX)
            return RL_ENCODE_TOO_LARGE;
        need = (int64_t)varint_size(body) + body;
        if ((uint64_t)need > out_cap - w)
            return RL_ENCODE_NO_ROOM;

        w += put_varint(out + w, body);
        out[w++] = 0; /* attributes: unused */
        w += put_varint(out + w, timestamp_deltas[i]);
        w += put_varint(out + w, (int64_t)i);
        if (put_field(out, &w, key_lens[i], blob, blob_len, &src)
            || put_field(out, &w, value_lens[i], blob, blob_len, &src))
            return RL_ENCODE_BAD_ARGS;
        w += put_varint(out + w, hc);
        for (j = h; j < h_end; j++)
            if (put_field(out, &w, header_key_lens[j], blob, blob_len, &src)
                || put_field(out, &w, header_value_lens[j], blob, blob_len, &src))
                return RL_ENCODE_BAD_ARGS;
        h = h_end;
    }
    return src == blob_len && h == header_total ? (int64_t)w : RL_ENCODE_BAD_ARGS;
}

/* ---- decode_records */

int rl_decode_records(const uint8_t *buf, size_t len, size_t count,
                      rl_record_view *records,
                      rl_header_view *headers, size_t header_cap)
{
    size_t pos = 0, h = 0, i, j;

    for (i = 0; i < count; i++) {
        rl_record_view *r = &records[i];
        int32_t body;
        size_t end;

        if (read_varint(buf, &pos, len, &body) || body < 0 || (size_t)body > len - pos)
            return RL_DECODE_MALFORMED;
        end = pos + (size_t)body;
        if (pos == end)
            return RL_DECODE_MALFORMED;
        pos++; /* attributes: unused by v2 records */
        if (read_varlong(buf, &pos, end, &r->timestamp_delta)
            || read_varint(buf, &pos, end, &r->offset_delta)
            || read_field(buf, &pos, end, &r->key_pos, &r->key_len)
            || read_field(buf, &pos, end, &r->value_pos, &r->value_len)
            || read_varint(buf, &pos, end, &r->header_count)
            || r->header_count < 0
            || (size_t)r->header_count > (end - pos) / MIN_HEADER_BYTES)
            return RL_DECODE_MALFORMED;
        if ((size_t)r->header_count > header_cap - h)
            return RL_DECODE_MORE_HEADERS;
        r->first_header = h;
        for (j = 0; j < (size_t)r->header_count; j++, h++) {
            rl_header_view *hv = &headers[h];
            if (read_field(buf, &pos, end, &hv->key_pos, &hv->key_len)
                || hv->key_len < 0
                || read_field(buf, &pos, end, &hv->value_pos, &hv->value_len))
                return RL_DECODE_MALFORMED;
        }
        if (pos != end) /* fields must fill the declared length exactly */
            return RL_DECODE_MALFORMED;
    }
    return pos == len ? RL_DECODE_OK : RL_DECODE_MALFORMED;
}

/* ---- check_records: the broker's walk of every batch it accepts.
 * Nothing is kept, so it costs one pass over the bytes; the checks are
 * rl_decode_records' plus what Kafka's broker refuses on top: offset deltas
 * 0, 1, ... in order, and header keys that are UTF-8 (Python's strict
 * decoder: no overlong forms, no surrogates, nothing past U+10FFFF), since
 * consumers that decode keys as text stop at one that is not. */

static int utf8_valid(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i], lo = 0x80, hi = 0xBF;
        size_t need, k;
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF)
            need = 1;
        else if (c == 0xE0)
            need = 2, lo = 0xA0;
        else if (c == 0xED)
            need = 2, hi = 0x9F; /* U+D800..DFFF are surrogates */
        else if (c >= 0xE1 && c <= 0xEF)
            need = 2;
        else if (c == 0xF0)
            need = 3, lo = 0x90;
        else if (c == 0xF4)
            need = 3, hi = 0x8F;
        else if (c >= 0xF1 && c <= 0xF3)
            need = 3;
        else
            return 0;
        if (need > n - i - 1 || s[i + 1] < lo || s[i + 1] > hi)
            return 0;
        for (k = 2; k <= need; k++)
            if ((s[i + k] & 0xC0) != 0x80)
                return 0;
        i += need + 1;
    }
    return 1;
}

/* The walk's varint reads, inlined with one- and two-byte fast paths (most
 * of a records area: lengths and deltas under 8192); the rest go to
 * read_raw, so the results are read_varint's and read_varlong's. */
#if defined(__GNUC__)
#define RL_INLINE static inline __attribute__((always_inline))
#else
#define RL_INLINE static inline
#endif

RL_INLINE int walk_raw(const uint8_t *buf, size_t *pos, size_t end, unsigned max_bytes,
                       uint64_t *raw)
{
    size_t p = *pos;
    if (p < end && buf[p] < 0x80) {
        *raw = buf[p];
        *pos = p + 1;
        return 0;
    }
    if (end - p >= 2 && buf[p + 1] < 0x80) { /* buf[p] continues: it is not the one-byte case */
        *raw = (uint64_t)(buf[p] & 0x7f) | (uint64_t)buf[p + 1] << 7;
        *pos = p + 2;
        return 0;
    }
    return read_raw(buf, pos, end, max_bytes, raw);
}

RL_INLINE int walk_varint(const uint8_t *buf, size_t *pos, size_t end, int32_t *out)
{
    uint64_t raw;
    if (walk_raw(buf, pos, end, 5, &raw))
        return -1;
    *out = (int32_t)unzigzag(raw & 0xffffffffu);
    return 0;
}

/* Skips a length-prefixed field; its length in *len (-1 = null). */
RL_INLINE int walk_field(const uint8_t *buf, size_t *pos, size_t end, int32_t *len)
{
    if (walk_varint(buf, pos, end, len) || *len < -1)
        return -1;
    if (*len > 0) {
        if ((size_t)*len > end - *pos)
            return -1;
        *pos += (size_t)*len;
    }
    return 0;
}

int rl_check_records(const uint8_t *buf, size_t len, size_t count, size_t *at)
{
    size_t pos = 0, i, j;

    for (i = 0; i < count; i++) {
        int32_t body, offset_delta, header_count, key_len, value_len;
        uint64_t timestamp_delta;
        size_t end;

        if (pos == len) {
            *at = i;
            return RL_RECORDS_TOO_FEW;
        }
        if (walk_varint(buf, &pos, len, &body) || body <= 0 || (size_t)body > len - pos)
            goto malformed;
        end = pos + (size_t)body;
        pos++; /* attributes: unused by v2 records */
        if (walk_raw(buf, &pos, end, 10, &timestamp_delta) /* a varlong: any value will do */
            || walk_varint(buf, &pos, end, &offset_delta))
            goto malformed;
        if (offset_delta < 0 || (size_t)offset_delta != i) {
            *at = i;
            return RL_RECORDS_BAD_OFFSET_DELTA;
        }
        if (walk_field(buf, &pos, end, &key_len)
            || walk_field(buf, &pos, end, &value_len)
            || walk_varint(buf, &pos, end, &header_count)
            || header_count < 0
            || (size_t)header_count > (end - pos) / MIN_HEADER_BYTES)
            goto malformed;
        for (j = 0; j < (size_t)header_count; j++) {
            if (walk_field(buf, &pos, end, &key_len))
                goto malformed;
            if (key_len < 0 || !utf8_valid(buf + pos - (size_t)key_len, (size_t)key_len)) {
                *at = i;
                return RL_RECORDS_BAD_HEADER_KEY;
            }
            if (walk_field(buf, &pos, end, &value_len))
                goto malformed;
        }
        if (pos != end) /* fields must fill the declared length exactly */
            goto malformed;
    }
    *at = count;
    return pos == len ? RL_RECORDS_OK : RL_RECORDS_TOO_MANY;
malformed:
    *at = i;
    return RL_RECORDS_MALFORMED;
}

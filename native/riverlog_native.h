/* riverlog native paths: batch scanning, index search, record encode/decode.
 *
 * Plain C99 with no Python.h: cffi wraps it out of line (native/build_native.py)
 * and native/twin.py holds the reference semantics of every function here.
 * Every function takes the buffer and its length and never reads outside it,
 * whatever the bytes say.
 *
 * build_native.py feeds the text between the cdef markers to cffi's cdef, so
 * that part must stay within what cffi parses: integer #defines, typedefs and
 * prototypes only.
 */
#ifndef RIVERLOG_NATIVE_H
#define RIVERLOG_NATIVE_H

#include <stddef.h>
#include <stdint.h>

/* cdef-begin */
/* rl_scan_batches results; the same numbers as native.common.SCAN_*. */
#define RL_SCAN_OK 0
#define RL_SCAN_TRUNCATED 1
#define RL_SCAN_BAD_MAGIC 2
#define RL_SCAN_BAD_LENGTH 3

/* rl_encode_records errors (it returns the byte count otherwise). */
#define RL_ENCODE_NO_ROOM -1   /* out_cap below what the records need */
#define RL_ENCODE_TOO_LARGE -2 /* a record body over INT32_MAX bytes */
#define RL_ENCODE_BAD_ARGS -3  /* lengths and blob disagree */

/* rl_decode_records results. */
#define RL_DECODE_OK 0
#define RL_DECODE_MALFORMED -1
#define RL_DECODE_MORE_HEADERS -2 /* header_cap too small: retry larger */

/* rl_check_records results; the same numbers as native.common.RECORDS_*. */
#define RL_RECORDS_OK 0
#define RL_RECORDS_MALFORMED 1        /* a varint, length or field that does not fit its record */
#define RL_RECORDS_BAD_OFFSET_DELTA 2 /* record i's offset delta is not i */
#define RL_RECORDS_BAD_HEADER_KEY 3   /* a null header key, or one that is not UTF-8 */
#define RL_RECORDS_TOO_FEW 4          /* the area ends before count records */
#define RL_RECORDS_TOO_MANY 5         /* bytes left after count records */

typedef struct {
    int64_t position;   /* of the batch in buf */
    int64_t length;     /* whole batch: batchLength + 12 */
    int64_t base_offset;
    int64_t max_timestamp;
    int32_t last_offset_delta;
    int32_t records_count;
    int32_t partition_leader_epoch;
} rl_batch_info;

typedef struct {
    int64_t timestamp_delta;
    size_t key_pos;      /* position in buf; 0 when the key is null */
    size_t value_pos;
    size_t first_header; /* index of the record's first rl_header_view */
    int32_t offset_delta;
    int32_t key_len;     /* -1 = null */
    int32_t value_len;   /* -1 = null */
    int32_t header_count;
} rl_record_view;

typedef struct {
    size_t key_pos;
    size_t value_pos;
    int32_t key_len;     /* >= 0: header keys are never null */
    int32_t value_len;   /* -1 = null */
} rl_header_view;

/* Walk batches from position 0, writing at most out_cap infos; stopping after
 * out_cap batches counts as RL_SCAN_OK. */
int rl_scan_batches(const uint8_t *buf, size_t len, int64_t max_batch_bytes,
                    rl_batch_info *out, size_t out_cap,
                    size_t *out_count, size_t *end);

/* Largest slot whose key is <= target, or -1; buf holds >= entries entries. */
int64_t rl_offset_index_lookup(const uint8_t *buf, size_t entries, int64_t target);
int64_t rl_time_index_lookup(const uint8_t *buf, size_t entries, int64_t target);

/* A buffer pinned once for many lookups (the index files' mmaps). The
 * _pinned lookups check entries against len themselves and return
 * RL_INDEX_BAD_ENTRIES when they do not fit, so Python needs no check. */
typedef struct {
    const uint8_t *data;
    size_t len;
} rl_pinned;
#define RL_INDEX_BAD_ENTRIES -2
int64_t rl_offset_index_lookup_pinned(const rl_pinned *b, int64_t entries, int64_t target);
int64_t rl_time_index_lookup_pinned(const rl_pinned *b, int64_t entries, int64_t target);

/* Encode count records. Lengths are -1 for null; blob holds, record by record,
 * key, value, then each header's key and value. Returns bytes written or an
 * RL_ENCODE_* error. */
int64_t rl_encode_records(size_t count, const int64_t *timestamp_deltas,
                          const int64_t *key_lens, const int64_t *value_lens,
                          const int64_t *header_counts,
                          const int64_t *header_key_lens,
                          const int64_t *header_value_lens, size_t header_total,
                          const uint8_t *blob, size_t blob_len,
                          uint8_t *out, size_t out_cap);

/* Decode exactly count records filling records[count] and headers[header_cap]. */
int rl_decode_records(const uint8_t *buf, size_t len, size_t count,
                      rl_record_view *records,
                      rl_header_view *headers, size_t header_cap);
/* Walks a whole (uncompressed) records area of count records without
 * keeping anything: returns RL_RECORDS_OK or the first fault, and in *at the
 * index of the record where it was found (count for RL_RECORDS_TOO_MANY). */
int rl_check_records(const uint8_t *buf, size_t len, size_t count, size_t *at);
/* Adds riverlog.native._native.consumer_records and plain_records, built-in functions
 * that make records from and into Python objects (native/py_records.c); 0 on
 * success. */
int rl_attach_python_functions(void);
/* cdef-end */

#endif /* RIVERLOG_NATIVE_H */

/* Records made from and into Python objects in C, with CPython's API.
 *
 * cffi hands C flat data, never Python objects, and both ends of a record's
 * life in the client are Python objects: the consumer builds a bytes per key
 * and value, an int per offset and the ConsumerRecord tuple; the producer
 * reads its batch's lists of keys, values and timestamps. Done from Python,
 * that cost about a microsecond a record consumed and half of one produced.
 * So this file uses CPython's own API and is compiled into the same
 * extension as riverlog_native.c; rl_attach_python_functions(), called once
 * through cffi when native.compiled is imported, adds `consumer_records` and
 * `plain_records` to the module `riverlog.native._native` as built-in functions.
 *
 * The full (not the limited) API: the extension is built on the machine that
 * runs it, for the interpreter that runs it (py_limited_api=False in
 * native/build_native.py).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

#include "riverlog_native.h"

#define N_FIELDS 9 /* client.types.ConsumerRecord */
/* A record's bytes beyond its key and value, at most: length 5, attributes 1,
 * timestamp delta 10, offset delta 5, key and value lengths 5 + 5, header
 * count 5 (native/compiled.py's _RECORD_OVERHEAD_MAX). */
#define RECORD_OVERHEAD_MAX 36

/* Returns a new reference; for a borrowed buffer of the views' raw bytes. */
static PyObject *field_bytes(const char *raw, Py_ssize_t raw_len, size_t pos, int32_t len)
{
    if (len < 0)
        Py_RETURN_NONE;
    if (pos > (size_t)raw_len || (size_t)len > (size_t)raw_len - pos) {
        PyErr_SetString(PyExc_ValueError, "record field outside the records area");
        return NULL;
    }
    return PyBytes_FromStringAndSize(raw + pos, len);
}

static PyObject *record_headers(const char *raw, Py_ssize_t raw_len, const rl_header_view *hv,
                                size_t h_count, const rl_record_view *v, PyObject *no_headers)
{
    if (v->header_count == 0) {
        Py_INCREF(no_headers);
        return no_headers;
    }
    if (v->header_count < 0 || v->first_header > h_count
        || (size_t)v->header_count > h_count - v->first_header) {
        PyErr_SetString(PyExc_ValueError, "record headers outside the header views");
        return NULL;
    }
    PyObject *out = PyTuple_New(v->header_count);
    if (out == NULL)
        return NULL;
    for (int32_t j = 0; j < v->header_count; j++) {
        const rl_header_view *h = &hv[v->first_header + j];
        if (h->key_len < 0 || h->key_pos > (size_t)raw_len || (size_t)h->key_len > (size_t)raw_len - h->key_pos) {
            PyErr_SetString(PyExc_ValueError, "header key outside the records area");
            Py_DECREF(out);
            return NULL;
        }
        PyObject *key = PyUnicode_DecodeUTF8(raw + h->key_pos, h->key_len, "strict");
        PyObject *value = key ? field_bytes(raw, raw_len, h->value_pos, h->value_len) : NULL;
        PyObject *pair = value ? PyTuple_Pack(2, key, value) : NULL;
        Py_XDECREF(key);
        Py_XDECREF(value);
        if (pair == NULL) {
            Py_DECREF(out);
            return NULL;
        }
        PyTuple_SET_ITEM(out, j, pair);
    }
    return out;
}

/* consumer_records(cls, topic, partition, raw, views, headers, first, n,
 *                  base_offset, timestamp, timestamp_type, epoch)
 *
 * Records first .. first+n-1 of the views (rl_record_view[] in the buffer
 * `views`, rl_header_view[] in `headers`, positions into the bytes `raw`),
 * as instances of the tuple subclass `cls`. Timestamps are `timestamp` (the
 * batch's baseTimestamp) + the record's delta for timestamp_type 0
 * (CreateTime), or `timestamp` (its maxTimestamp) for every record for type 1
 * (LogAppendTime). Offsets are base_offset + the record's offset delta. A header key that is not UTF-8 raises
 * UnicodeDecodeError. */
static PyObject *consumer_records(PyObject *self, PyObject *args)
{
    PyTypeObject *cls;
    PyObject *topic, *partition, *raw_obj, *views_obj, *headers_obj, *epoch;
    Py_ssize_t first, n;
    long long base_offset, timestamp;
    int log_append_time;
    (void)self;
    if (!PyArg_ParseTuple(args, "O!OOO!OOnnLLpO", &PyType_Type, &cls, &topic, &partition,
                          &PyBytes_Type, &raw_obj, &views_obj, &headers_obj, &first, &n,
                          &base_offset, &timestamp, &log_append_time, &epoch))
        return NULL;
    if (!PyType_IsSubtype(cls, &PyTuple_Type)) {
        PyErr_SetString(PyExc_TypeError, "cls must be a tuple subclass");
        return NULL;
    }
    const char *raw = PyBytes_AS_STRING(raw_obj);
    Py_ssize_t raw_len = PyBytes_GET_SIZE(raw_obj);

    Py_buffer vb, hb;
    if (PyObject_GetBuffer(views_obj, &vb, PyBUF_SIMPLE) < 0)
        return NULL;
    if (PyObject_GetBuffer(headers_obj, &hb, PyBUF_SIMPLE) < 0) {
        PyBuffer_Release(&vb);
        return NULL;
    }
    PyObject *out = NULL, *ts_type = NULL, *no_headers = NULL, *last_ts = NULL;
    size_t v_count = (size_t)vb.len / sizeof(rl_record_view);
    size_t h_count = (size_t)hb.len / sizeof(rl_header_view);
    if (first < 0 || n < 0 || (size_t)first > v_count || (size_t)n > v_count - (size_t)first) {
        PyErr_SetString(PyExc_ValueError, "records outside the views");
        goto done;
    }
    const rl_record_view *views = (const rl_record_view *)vb.buf + first;
    const rl_header_view *hviews = (const rl_header_view *)hb.buf;
    ts_type = PyLong_FromLong(log_append_time ? 1 : 0);
    no_headers = PyTuple_New(0);
    if (ts_type == NULL || no_headers == NULL || (out = PyList_New(n)) == NULL)
        goto done;
    long long last_ts_value = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        const rl_record_view *v = &views[i];
        long long ts_value = timestamp, offset_value;
        if ((!log_append_time && __builtin_add_overflow(timestamp, v->timestamp_delta, &ts_value))
            || __builtin_add_overflow(base_offset, (long long)v->offset_delta, &offset_value)) {
            PyErr_SetString(PyExc_ValueError, "record offset or timestamp out of the int64 range");
            goto fail;
        }
        if (last_ts == NULL || ts_value != last_ts_value) { /* a batch's records often share one */
            Py_XDECREF(last_ts);
            if ((last_ts = PyLong_FromLongLong(ts_value)) == NULL)
                goto fail;
            last_ts_value = ts_value;
        }
        PyObject *offset = PyLong_FromLongLong(offset_value);
        PyObject *key = offset ? field_bytes(raw, raw_len, v->key_pos, v->key_len) : NULL;
        PyObject *value = key ? field_bytes(raw, raw_len, v->value_pos, v->value_len) : NULL;
        PyObject *hdrs = value ? record_headers(raw, raw_len, hviews, h_count, v, no_headers) : NULL;
        PyObject *rec = hdrs ? cls->tp_alloc(cls, N_FIELDS) : NULL;
        if (rec == NULL) {
            Py_XDECREF(offset);
            Py_XDECREF(key);
            Py_XDECREF(value);
            Py_XDECREF(hdrs);
            goto fail;
        }
        Py_INCREF(topic);
        Py_INCREF(partition);
        Py_INCREF(last_ts);
        Py_INCREF(ts_type);
        Py_INCREF(epoch);
        PyTuple_SET_ITEM(rec, 0, topic);
        PyTuple_SET_ITEM(rec, 1, partition);
        PyTuple_SET_ITEM(rec, 2, offset);
        PyTuple_SET_ITEM(rec, 3, last_ts);
        PyTuple_SET_ITEM(rec, 4, ts_type);
        PyTuple_SET_ITEM(rec, 5, key);
        PyTuple_SET_ITEM(rec, 6, value);
        PyTuple_SET_ITEM(rec, 7, hdrs);
        PyTuple_SET_ITEM(rec, 8, epoch);
        PyList_SET_ITEM(out, i, rec);
    }
    goto done;
fail:
    Py_CLEAR(out);
done:
    Py_XDECREF(last_ts);
    Py_XDECREF(ts_type);
    Py_XDECREF(no_headers);
    PyBuffer_Release(&hb);
    PyBuffer_Release(&vb);
    return out;
}

/* plain_records(timestamps, base_timestamp, keys, values) -> bytes | None
 *
 * The records area of a batch (uncompressed; record i at offset delta i, no
 * headers) for lists of int timestamps and of bytes-or-None keys and values,
 * encoded by rl_encode_records. None when the input is anything else (a
 * key or value that is not exactly bytes or None, a timestamp that is not an
 * int or whose delta is beyond int64, lists of different lengths): the
 * general encoder then takes it, and raises for what is wrong. ValueError
 * for a record over 2**31 - 1 bytes, as the general encoder. */
static PyObject *plain_records(PyObject *self, PyObject *args)
{
    PyObject *timestamps, *keys, *values, *out = NULL;
    long long base_timestamp;
    (void)self;
    if (!PyArg_ParseTuple(args, "O!LO!O!", &PyList_Type, &timestamps, &base_timestamp,
                          &PyList_Type, &keys, &PyList_Type, &values))
        return NULL;
    Py_ssize_t n = PyList_GET_SIZE(values);
    if (n == 0 || PyList_GET_SIZE(keys) != n || PyList_GET_SIZE(timestamps) != n)
        Py_RETURN_NONE;
    int64_t *deltas = PyMem_Malloc(sizeof(int64_t) * 4 * (size_t)n);
    if (deltas == NULL)
        return PyErr_NoMemory();
    int64_t *key_lens = deltas + n, *value_lens = deltas + 2 * n, *zeros = deltas + 3 * n;
    size_t blob_len = 0;
    uint8_t *blob = NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *ts = PyList_GET_ITEM(timestamps, i), *key = PyList_GET_ITEM(keys, i),
                 *value = PyList_GET_ITEM(values, i);
        int overflow = 0;
        long long t = PyLong_CheckExact(ts) ? PyLong_AsLongLongAndOverflow(ts, &overflow) : 0;
        if (!PyLong_CheckExact(ts) || overflow || (t == -1 && PyErr_Occurred())
            || __builtin_sub_overflow(t, base_timestamp, &deltas[i])
            || !(key == Py_None || PyBytes_CheckExact(key)) || !(value == Py_None || PyBytes_CheckExact(value))) {
            PyErr_Clear();
            PyMem_Free(deltas);
            Py_RETURN_NONE;
        }
        key_lens[i] = key == Py_None ? -1 : (int64_t)PyBytes_GET_SIZE(key);
        value_lens[i] = value == Py_None ? -1 : (int64_t)PyBytes_GET_SIZE(value);
        blob_len += (size_t)(key_lens[i] > 0 ? key_lens[i] : 0) + (size_t)(value_lens[i] > 0 ? value_lens[i] : 0);
        zeros[i] = 0;
    }
    /* rl_encode_records reads keys and values from one blob, in order. */
    blob = PyMem_Malloc(blob_len ? blob_len : 1);
    if (blob == NULL) {
        PyMem_Free(deltas);
        return PyErr_NoMemory();
    }
    size_t at = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (key_lens[i] > 0) {
            memcpy(blob + at, PyBytes_AS_STRING(PyList_GET_ITEM(keys, i)), (size_t)key_lens[i]);
            at += (size_t)key_lens[i];
        }
        if (value_lens[i] > 0) {
            memcpy(blob + at, PyBytes_AS_STRING(PyList_GET_ITEM(values, i)), (size_t)value_lens[i]);
            at += (size_t)value_lens[i];
        }
    }
    size_t cap = RECORD_OVERHEAD_MAX * (size_t)n + blob_len;
    out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)cap);
    if (out != NULL) {
        int64_t written = rl_encode_records((size_t)n, deltas, key_lens, value_lens, zeros, zeros, zeros, 0,
                                            blob, blob_len, (uint8_t *)PyBytes_AS_STRING(out), cap);
        if (written == RL_ENCODE_TOO_LARGE) {
            PyErr_SetString(PyExc_ValueError, "a record is over 2**31 - 1 bytes");
            Py_CLEAR(out);
        } else if (written < 0) {
            PyErr_Format(PyExc_SystemError, "rl_encode_records failed with %lld", (long long)written);
            Py_CLEAR(out);
        } else {
            _PyBytes_Resize(&out, (Py_ssize_t)written); /* NULL and an error set if it fails */
        }
    }
    PyMem_Free(blob);
    PyMem_Free(deltas);
    return out;
}

static PyMethodDef methods[] = {
    {"consumer_records", consumer_records, METH_VARARGS,
     "consumer_records(cls, topic, partition, raw, views, headers, first, n, base_offset, "
     "timestamp, timestamp_type, epoch) -> list of cls"},
    {"plain_records", plain_records, METH_VARARGS,
     "plain_records(timestamps, base_timestamp, keys, values) -> records area bytes, or None"},
    {NULL, NULL, 0, NULL},
};

int rl_attach_python_functions(void)
{
#if PY_VERSION_HEX >= 0x030E0000
    /* 3.14 caches a tuple's hash in the object, and tp_alloc leaves that
     * cache zeroed where tuple's own constructor marks it unset: records
     * made here would hash wrong. Not attached; the Python paths do both. */
    return -1;
#else
    /* Called through cffi, which let go of the GIL for the call. */
    PyGILState_STATE gil = PyGILState_Ensure();
    int rc = -1;
    PyObject *module = PyImport_ImportModule("riverlog.native._native");
    if (module != NULL) {
        rc = PyModule_AddFunctions(module, methods);
        Py_DECREF(module);
    }
    if (rc < 0)
        PyErr_Clear();
    PyGILState_Release(gil);
    return rc;
#endif
}

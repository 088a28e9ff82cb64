/* The consumer's records made in C: one Python call builds a list of
 * ConsumerRecord tuples from rl_decode_records' views.
 *
 * cffi hands C flat data, never Python objects, and building a record is
 * nothing but Python objects (a bytes per key and value, an int per offset,
 * the tuple): done from Python that cost the consumer about a microsecond a
 * record. So this file uses CPython's own API and is compiled into the same
 * extension as riverlog_native.c; rl_attach_consumer_records(), called once
 * through cffi when native.compiled is imported, adds `consumer_records` to
 * the module `native._native` as an ordinary built-in function.
 *
 * The full (not the limited) API: the extension is built on the machine that
 * runs it, for the interpreter that runs it (py_limited_api=False in
 * native/build_native.py).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "riverlog_native.h"

#define N_FIELDS 9 /* client.types.ConsumerRecord */

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

static PyMethodDef methods[] = {
    {"consumer_records", consumer_records, METH_VARARGS,
     "consumer_records(cls, topic, partition, raw, views, headers, first, n, base_offset, "
     "timestamp, timestamp_type, epoch) -> list of cls"},
    {NULL, NULL, 0, NULL},
};

int rl_attach_consumer_records(void)
{
#if PY_VERSION_HEX >= 0x030E0000
    /* 3.14 caches a tuple's hash in the object, and tp_alloc leaves that
     * cache zeroed where tuple's own constructor marks it unset: records
     * made here would hash wrong. Not attached; the Python path makes them. */
    return -1;
#else
    /* Called through cffi, which let go of the GIL for the call. */
    PyGILState_STATE gil = PyGILState_Ensure();
    int rc = -1;
    PyObject *module = PyImport_ImportModule("native._native");
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

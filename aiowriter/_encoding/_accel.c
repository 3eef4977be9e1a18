/* Sample lists of doubles in C: samples.encode_sample_lists' commonest case (a 2-D float64
 * array, every sample VALID), written straight from the array's memory. The Python paths in
 * samples.py stay the reference (tests/test_encoding_accel.py compares the bytes) and the
 * fallback where this module was not built.
 *
 * Why C: for the Writer Module's 3x3 example packet, packing and joining the 13-byte samples in
 * Python was ~4.5 us of the builder's ~6 us; here it is a copy per sample. periodic_double
 * writes a whole PeriodicData content in the commonest case (an id data format, no statuses),
 * and periodic_packet that whole call, its checks and the EncodedPacket included.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

#include "../_slots.h"

/* Bytes of ``value`` as a protobuf varint. */
static Py_ssize_t varint_len(size_t value) {
    Py_ssize_t n = 1;
    while (value >= 0x80) {
        value >>= 7;
        n++;
    }
    return n;
}

static char *put_varint(char *out, size_t value) {
    while (value >= 0x80) {
        *out++ = (char)((value & 0x7F) | 0x80);
        value >>= 7;
    }
    *out++ = (char)value;
    return out;
}

/* The doubles of a 2-D float64 buffer (C-contiguous, native little-endian, no zero) as p lists
 * of n samples; 0 when ``obj`` is not that (nothing is raised: the caller's Python path decides),
 * -1 on a real error. ``view`` must be released when 1 is returned. p and n < 0: taken from the
 * buffer's shape (which must be 2-D). */
static int double_view(PyObject *obj, Py_buffer *view, Py_ssize_t *p, Py_ssize_t *n) {
#if PY_LITTLE_ENDIAN
    int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (*p < 0 ? PyBUF_ND : 0);
    if (PyObject_GetBuffer(obj, view, flags) < 0) {
        PyErr_Clear(); /* not contiguous, or no buffer */
        return 0;
    }
    if (*p < 0) {
        if (view->ndim != 2 || view->shape == NULL) goto decline;
        *p = view->shape[0];
        *n = view->shape[1];
    }
    const char *format = view->format ? view->format : "B";
    int doubles = view->itemsize == 8 && (strcmp(format, "d") == 0 ||
                                          strcmp(format, "<d") == 0 || strcmp(format, "=d") == 0);
    if (!doubles || *p < 1 || *n < 1 || *n > PY_SSIZE_T_MAX / 13 / *p ||
        view->len != *p * *n * 8)
        goto decline;
    const double *values = (const double *)view->buf;
    for (Py_ssize_t i = 0; i < *p * *n; i++)
        if (values[i] == 0.0) goto decline; /* 0.0 and -0.0: proto3 leaves a zero value out */
    return 1;
decline:
    PyBuffer_Release(view);
    return 0;
#else
    return 0; /* the bytes on the wire are little-endian: the Python path swaps them */
#endif
}

/* Bytes of p repeated fields ``key_len`` bytes of key, each a DoubleSampleList of n samples. */
static size_t double_lists_size(Py_ssize_t key_len, Py_ssize_t p, Py_ssize_t n) {
    size_t body = (size_t)13 * (size_t)n;
    size_t list = 1 + (size_t)varint_len(body) + body;
    size_t field = (size_t)key_len + (size_t)varint_len(list) + list;
    return field > (size_t)(PY_SSIZE_T_MAX / 2) / (size_t)p ? 0 : field * (size_t)p;
}

static char *put_double_lists(char *out, const char *key, Py_ssize_t key_len,
                              const double *values, Py_ssize_t p, Py_ssize_t n) {
    size_t body = (size_t)13 * (size_t)n; /* the samples of one list */
    size_t list = 1 + (size_t)varint_len(body) + body; /* DoubleSampleList field, in the oneof */
    for (Py_ssize_t c = 0; c < p; c++) {
        memcpy(out, key, (size_t)key_len);
        out = put_varint(out + key_len, list);
        *out++ = 0x0A;
        out = put_varint(out, body);
        for (Py_ssize_t s = 0; s < n; s++) {
            /* DoubleSampleList.samples (11 bytes): value (fixed64), status VALID */
            out[0] = 0x0A;
            out[1] = 0x0B;
            out[2] = 0x09;
            memcpy(out + 3, &values[c * n + s], 8);
            out[11] = 0x10;
            out[12] = 0x01;
            out += 13;
        }
    }
    return out;
}

/* double_lists(key, values, p, n) -> bytes | None: ``p`` repeated fields ``key`` (a
 * SampleColumn/SampleRow key), each a DoubleSampleList of ``n`` DoubleSamples {value, status
 * VALID}, from ``values``: a C-contiguous buffer of p * n native doubles. None (nothing to do
 * here: the caller takes the Python path) when the buffer is not that, or a value is zero
 * (proto3 leaves a zero value out, so the sample is shorter). */
static PyObject *double_lists(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 4 || !PyBytes_CheckExact(args[0])) {
        PyErr_SetString(PyExc_TypeError, "double_lists(key: bytes, values, p: int, n: int)");
        return NULL;
    }
    Py_ssize_t p = PyLong_AsSsize_t(args[2]);
    if (p == -1 && PyErr_Occurred()) return NULL;
    Py_ssize_t n = PyLong_AsSsize_t(args[3]);
    if (n == -1 && PyErr_Occurred()) return NULL;
    if (p < 1 || n < 1) Py_RETURN_NONE;
    Py_buffer view;
    if (!double_view(args[1], &view, &p, &n)) Py_RETURN_NONE;
    Py_ssize_t key_len = PyBytes_GET_SIZE(args[0]);
    size_t size = double_lists_size(key_len, p, n);
    PyObject *result = size ? PyBytes_FromStringAndSize(NULL, (Py_ssize_t)size) : NULL;
    if (result != NULL)
        put_double_lists(PyBytes_AS_STRING(result), PyBytes_AS_STRING(args[0]), key_len,
                         (const double *)view.buf, p, n);
    PyBuffer_Release(&view);
    if (result == NULL && size == 0) Py_RETURN_NONE;
    return result;
}

/* periodic_double(data_format_field, start_time, interval, columns) -> bytes | None: the whole
 * content of a PeriodicData packet (builders.periodic_data) whose data format field (key
 * included) is given, start_time a uint64, interval a uint32 and columns a 2-D array as
 * double_lists takes; None when columns is not that. */
/* The content of periodic_double once its arguments are checked: None (a new reference) when
 * columns is not a 2-D double array as double_lists takes. */
static PyObject *periodic_content(PyObject *fmt, unsigned long long start,
                                  unsigned long long step, PyObject *columns) {
    Py_ssize_t p = -1, n = -1;
    Py_buffer view;
    if (!double_view(columns, &view, &p, &n)) Py_RETURN_NONE;
    Py_ssize_t fmt_len = PyBytes_GET_SIZE(fmt);
    size_t lists = double_lists_size(1, p, n);
    size_t size = lists + (size_t)fmt_len + (start ? 9 : 0) +
                  (step ? 1 + (size_t)varint_len((size_t)step) : 0);
    PyObject *result = lists ? PyBytes_FromStringAndSize(NULL, (Py_ssize_t)size) : NULL;
    if (result == NULL) {
        PyBuffer_Release(&view);
        if (lists == 0) Py_RETURN_NONE;
        return NULL;
    }
    char *out = PyBytes_AS_STRING(result);
    memcpy(out, PyBytes_AS_STRING(fmt), (size_t)fmt_len);
    out += fmt_len;
    if (start) { /* start_time: fixed64, field 2 */
        *out++ = 0x11;
        for (int i = 0; i < 8; i++) *out++ = (char)((start >> (8 * i)) & 0xFF);
    }
    if (step) { /* interval: uint32, field 3 */
        *out++ = 0x18;
        out = put_varint(out, (size_t)step);
    }
    put_double_lists(out, "\x22", 1, (const double *)view.buf, p, n); /* columns, field 4 */
    PyBuffer_Release(&view);
    return result;
}

static PyObject *periodic_double(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 4 || !PyBytes_CheckExact(args[0]) || !PyLong_CheckExact(args[1]) ||
        !PyLong_CheckExact(args[2])) {
        PyErr_SetString(PyExc_TypeError,
                        "periodic_double(data_format_field: bytes, start: int, interval: int, "
                        "columns)");
        return NULL;
    }
    unsigned long long start = PyLong_AsUnsignedLongLong(args[1]);
    if (start == (unsigned long long)-1 && PyErr_Occurred()) return NULL;
    unsigned long long step = PyLong_AsUnsignedLongLong(args[2]);
    if (step == (unsigned long long)-1 && PyErr_Occurred()) return NULL;
    if (step > 0xFFFFFFFFULL) {
        PyErr_SetString(PyExc_OverflowError, "interval is a uint32");
        return NULL;
    }
    return periodic_content(args[0], start, step, args[3]);
}

/* bind_packet(EncodedPacket, format_cache): where EncodedPacket's slots are, and builders.py's
 * cache of data-format fields by id; periodic_packet() needs both. */
static struct {
    PyTypeObject *type;
    PyObject *formats, *periodic_name, *module_name, *numpy;
    /* The last columns type found to be numpy's (a strong reference): a static type's
     * __module__ is made anew from its tp_name on each lookup, a str built and interned, ~15%
     * of this call (perf). */
    PyTypeObject *numpy_type;
    Py_ssize_t type_, content, is_essential, checked;
} P;
static int packet_bound = 0;

static PyObject *bind_packet(PyObject *module, PyObject *args) {
    PyTypeObject *type;
    PyObject *formats;
    if (!PyArg_ParseTuple(args, "O!O!", &PyType_Type, &type, &PyDict_Type, &formats)) return NULL;
    Py_ssize_t type_, content, is_essential, checked;
    if (member_offset(type, "type", &type_) || member_offset(type, "content", &content) ||
        member_offset(type, "is_essential", &is_essential) ||
        member_offset(type, "_checked", &checked))
        return NULL;
    if (P.periodic_name == NULL) {
        if ((P.periodic_name = PyUnicode_InternFromString("PeriodicData")) == NULL ||
            (P.module_name = PyUnicode_InternFromString("__module__")) == NULL ||
            (P.numpy = PyUnicode_InternFromString("numpy")) == NULL)
            return NULL;
    }
    Py_INCREF(type);
    Py_INCREF(formats);
    Py_XSETREF(P.type, type);
    Py_XSETREF(P.formats, formats);
    P.type_ = type_;
    P.content = content;
    P.is_essential = is_essential;
    P.checked = checked;
    packet_bound = 1;
    Py_RETURN_NONE;
}

/* periodic_packet(data_format, start_time, interval, columns) -> EncodedPacket | None:
 * builders.periodic_data's commonest call whole, checks included: a data-format id whose
 * field is cached, start_time an int in uint64, interval an int in uint32, columns a numpy
 * array as periodic_double takes. None whenever any of that does not hold (the Python path
 * then decides, and says what is wrong); the packet as ``trusted()`` makes it otherwise. The
 * Python checks and the packet's four slot stores around periodic_double were ~0.6 us of a
 * 3x3 packet's ~1.3 us. */
static PyObject *periodic_packet(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError,
                        "periodic_packet(data_format, start_time, interval, columns)");
        return NULL;
    }
    if (!packet_bound) {
        PyErr_SetString(PyExc_RuntimeError, "bind_packet() was not called");
        return NULL;
    }
    if (!PyLong_CheckExact(args[0]) || !PyLong_CheckExact(args[1]) ||
        !PyLong_CheckExact(args[2]))
        Py_RETURN_NONE;
    PyObject *fmt = PyDict_GetItemWithError(P.formats, args[0]); /* borrowed */
    if (fmt == NULL) {
        if (PyErr_Occurred()) return NULL;
        Py_RETURN_NONE;
    }
    if (!PyBytes_CheckExact(fmt)) Py_RETURN_NONE;
    /* Negative or too big: the Python path says so. */
    unsigned long long start = PyLong_AsUnsignedLongLong(args[1]);
    if (start == (unsigned long long)-1 && PyErr_Occurred()) {
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    unsigned long long step = PyLong_AsUnsignedLongLong(args[2]);
    if (step == (unsigned long long)-1 && PyErr_Occurred()) {
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    if (step > 0xFFFFFFFFULL) Py_RETURN_NONE;
    /* As builders.py: type(columns).__module__ == "numpy" */
    PyTypeObject *columns_type = Py_TYPE(args[3]);
    if (columns_type != P.numpy_type) {
        PyObject *where = PyObject_GetAttr((PyObject *)columns_type, P.module_name);
        if (where == NULL) {
            PyErr_Clear();
            Py_RETURN_NONE;
        }
        int numpy = where == P.numpy ||
                    (PyUnicode_CheckExact(where) && PyUnicode_Compare(where, P.numpy) == 0);
        Py_DECREF(where);
        if (!numpy) Py_RETURN_NONE;
        /* A static type's __module__ cannot change; a heap type's can, so only static ones
         * are remembered (numpy.ndarray is one). */
        if (!(columns_type->tp_flags & Py_TPFLAGS_HEAPTYPE)) {
            Py_INCREF(columns_type);
            Py_XSETREF(P.numpy_type, columns_type);
        }
    }
    Py_INCREF(fmt); /* the cache may drop it meanwhile (it is only ever added to) */
    PyObject *content = periodic_content(fmt, start, step, args[3]);
    Py_DECREF(fmt);
    if (content == NULL || content == Py_None) return content;
    PyObject *packet = P.type->tp_alloc(P.type, 0);
    if (packet == NULL) {
        Py_DECREF(content);
        return NULL;
    }
    Py_INCREF(P.periodic_name);
    SLOT(packet, P.type_) = P.periodic_name;
    SLOT(packet, P.content) = content; /* takes the reference */
    Py_INCREF(Py_False);
    SLOT(packet, P.is_essential) = Py_False;
    Py_INCREF(Py_True);
    SLOT(packet, P.checked) = Py_True;
    return packet;
}

/* envelope(type_field, session_field, is_essential, content, id) -> bytes: the canonical bytes of
 * Packet{type, session_key, is_essential, content, id} (wire.encode_packet) whose first two
 * fields are given whole (key, length and text, as wire.py caches them); id a uint64. One
 * allocation and four copies, where joining the parts in Python cost ~1 us of a builder's packet
 * (a list, a join, and the id's varint in a Python loop: ids grow past any cache). */
static PyObject *envelope(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 5 || !PyBytes_CheckExact(args[0]) || !PyBytes_CheckExact(args[1]) ||
        !PyBool_Check(args[2]) || !PyBytes_CheckExact(args[3]) || !PyLong_CheckExact(args[4])) {
        PyErr_SetString(PyExc_TypeError,
                        "envelope(type_field: bytes, session_field: bytes, is_essential: bool, "
                        "content: bytes, id: int)");
        return NULL;
    }
    unsigned long long id = PyLong_AsUnsignedLongLong(args[4]);
    if (id == (unsigned long long)-1 && PyErr_Occurred()) return NULL;
    Py_ssize_t type_len = PyBytes_GET_SIZE(args[0]);
    Py_ssize_t session_len = PyBytes_GET_SIZE(args[1]);
    Py_ssize_t n = PyBytes_GET_SIZE(args[3]);
    int essential = args[2] == Py_True;
    Py_ssize_t size = type_len + session_len + (essential ? 2 : 0) +
                      (n ? 1 + varint_len((size_t)n) + n : 0) +
                      (id ? 1 + varint_len((size_t)id) : 0);
    PyObject *result = PyBytes_FromStringAndSize(NULL, size);
    if (result == NULL) return NULL;
    char *out = PyBytes_AS_STRING(result);
    memcpy(out, PyBytes_AS_STRING(args[0]), (size_t)type_len); /* type, field 1 */
    out += type_len;
    memcpy(out, PyBytes_AS_STRING(args[1]), (size_t)session_len); /* session_key, field 2 */
    out += session_len;
    if (essential) { /* is_essential, field 3 (proto3: false is left out) */
        *out++ = 0x18;
        *out++ = 0x01;
    }
    if (n) { /* content, field 4 */
        *out++ = 0x22;
        out = put_varint(out, (size_t)n);
        memcpy(out, PyBytes_AS_STRING(args[3]), (size_t)n);
        out += n;
    }
    if (id) { /* id, field 5 */
        *out++ = 0x28;
        put_varint(out, (size_t)id);
    }
    return result;
}

static PyMethodDef methods[] = {
    {"envelope", (PyCFunction)(void (*)(void))envelope, METH_FASTCALL,
     "envelope(type_field, session_field, is_essential, content, id) -> bytes."},
    {"double_lists", (PyCFunction)(void (*)(void))double_lists, METH_FASTCALL,
     "double_lists(key, values, p, n) -> bytes | None."},
    {"periodic_double", (PyCFunction)(void (*)(void))periodic_double, METH_FASTCALL,
     "periodic_double(data_format_field, start_time, interval, columns) -> bytes | None."},
    {"bind_packet", bind_packet, METH_VARARGS,
     "bind_packet(EncodedPacket, format_cache): see periodic_packet."},
    {"periodic_packet", (PyCFunction)(void (*)(void))periodic_packet, METH_FASTCALL,
     "periodic_packet(data_format, start_time, interval, columns) -> EncodedPacket | None."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_accel",
    "Sample lists of doubles in C (see samples.py).", -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__accel(void) { return PyModule_Create(&module); }

/* Sample lists of doubles in C: samples.encode_sample_lists' commonest case (a 2-D float64
 * array, every sample VALID), written straight from the array's memory. The Python paths in
 * samples.py stay the reference (tests/test_encoding_accel.py compares the bytes) and the
 * fallback where this module was not built.
 *
 * Why C: for the Writer Module's 3x3 example packet, packing and joining the 13-byte samples in
 * Python was ~4.5 us of the builder's ~6 us; here it is a copy per sample.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

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
#if PY_LITTLE_ENDIAN
    if (p < 1 || n < 1 || n > PY_SSIZE_T_MAX / 13 / p) Py_RETURN_NONE;
    Py_buffer view;
    if (PyObject_GetBuffer(args[1], &view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) {
        PyErr_Clear(); /* not contiguous, or no buffer: the Python path */
        Py_RETURN_NONE;
    }
    const char *format = view.format ? view.format : "B";
    int doubles = view.itemsize == 8 && (strcmp(format, "d") == 0 || strcmp(format, "<d") == 0 ||
                                         strcmp(format, "=d") == 0);
    if (!doubles || view.len != p * n * 8) {
        PyBuffer_Release(&view);
        Py_RETURN_NONE;
    }
    const double *values = (const double *)view.buf;
    for (Py_ssize_t i = 0; i < p * n; i++) {
        if (values[i] == 0.0) { /* 0.0 and -0.0 */
            PyBuffer_Release(&view);
            Py_RETURN_NONE;
        }
    }
    const char *key = PyBytes_AS_STRING(args[0]);
    Py_ssize_t key_len = PyBytes_GET_SIZE(args[0]);
    size_t body = (size_t)13 * (size_t)n; /* the samples of one list */
    size_t list = 1 + (size_t)varint_len(body) + body; /* DoubleSampleList field, in the oneof */
    size_t field = (size_t)key_len + (size_t)varint_len(list) + list;
    if (field > (size_t)(PY_SSIZE_T_MAX / p)) {
        PyBuffer_Release(&view);
        Py_RETURN_NONE;
    }
    PyObject *result = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(field * (size_t)p));
    if (result == NULL) {
        PyBuffer_Release(&view);
        return NULL;
    }
    char *out = PyBytes_AS_STRING(result);
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
    PyBuffer_Release(&view);
    return result;
#else
    Py_RETURN_NONE; /* the bytes on the wire are little-endian: the Python path swaps them */
#endif
}

static PyMethodDef methods[] = {
    {"double_lists", (PyCFunction)(void (*)(void))double_lists, METH_FASTCALL,
     "double_lists(key, values, p, n) -> bytes | None."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_accel",
    "Sample lists of doubles in C (see samples.py).", -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__accel(void) { return PyModule_Create(&module); }

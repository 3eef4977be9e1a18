/* Shared by aiowriter's optional C extensions: where a Python class keeps a __slots__ member in
 * its instances, so C code can read and write it directly (see _writing/_accel.c's bind()). */
#ifndef AIOWRITER_SLOTS_H
#define AIOWRITER_SLOTS_H

#include <Python.h>
#include <structmember.h>

/* The object stored in the slot at ``off`` of ``obj`` (an lvalue; NULL while it is unset). */
#define SLOT(obj, off) (*(PyObject **)((char *)(obj) + (off)))

/* The offset of ``type``'s __slots__ member ``name`` in its instances: 0, or -1 with an error
 * set (AttributeError: no such attribute; TypeError: it is not a plain object slot). */
static int member_offset(PyTypeObject *type, const char *name, Py_ssize_t *out) {
    PyObject *descr = PyObject_GetAttrString((PyObject *)type, name);
    if (descr == NULL) return -1;
    if (!Py_IS_TYPE(descr, &PyMemberDescr_Type) ||
        ((PyMemberDescrObject *)descr)->d_member->type != T_OBJECT_EX) {
        PyErr_Format(PyExc_TypeError, "%s.%s is not a __slots__ member", type->tp_name, name);
        Py_DECREF(descr);
        return -1;
    }
    *out = ((PyMemberDescrObject *)descr)->d_member->offset;
    Py_DECREF(descr);
    return 0;
}

#endif

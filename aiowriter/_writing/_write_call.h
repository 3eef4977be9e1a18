/* Between _accel.c (the write fast path) and _write_call.c (write_data's C awaitable). */
#ifndef AIOWRITER_WRITE_CALL_H
#define AIOWRITER_WRITE_CALL_H

#include <Python.h>

/* _accel.write(writer, data_source, stream, session_key, packet): a Delivery, None (take the
 * Python path) or NULL with an error set. With turn_over non-NULL, sets *turn_over to 1 when it
 * declined only because the writer task's turn is over (a PacketWriter's, whose
 * _turn_over/_turn_resumed hand the loop over). */
PyObject *aiowriter_write(PyObject *const *args, Py_ssize_t nargs, int *turn_over);

/* Adds WriteCall and WriteMethod to the module: 0, or -1 with an error set. */
int write_call_init(PyObject *module);

#endif

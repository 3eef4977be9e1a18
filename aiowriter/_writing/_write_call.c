/* PacketWriter.write_data as a C method whose call returns a C awaitable (WriteCall), instead
 * of a Python coroutine around the C fast path.
 *
 * Why: ``await writer.write_data(...)`` of a small packet was the C call (~0.49 us) plus the
 * coroutine around it (~0.22 us: the coroutine object, its frame, the call into C from it).
 * Here the method call makes one small object and ``await`` runs the fast path from the
 * awaitable's am_send, which returns the Delivery without a frame or a StopIteration.
 *
 * What stays exactly as with the coroutine:
 *   - the packet is queued when the call is awaited, not when it is made (a write that must
 *     wait for room is not overtaken by a later call awaited first: queues stay FIFO);
 *   - when the fast path declines, PacketWriter._write_declined (Python, the same steps as
 *     write_data's Python body) takes over, and this object forwards send(), throw() and close()
 *     to that coroutine until it finishes;
 *   - it is a collections.abc.Coroutine (accel.py registers it), so asyncio.create_task,
 *     gather, wait_for and anyio take it; a call never awaited warns as a coroutine does
 *     ("coroutine ... was never awaited"); awaiting it twice raises RuntimeError;
 *   - calls with keywords or another number of arguments go to the Python coroutine function.
 *
 * The end of a turn (admission.py: a writer that always finds room hands the loop over every
 * few small packets, so other tasks run) is handled here too: the writer's _turn_over() says
 * whether to suspend, and this object then yields once to the loop as ``await asyncio.sleep(0)``
 * does (a bare yield: the task runs again on the loop's next pass), calls _turn_resumed() and
 * tries the fast path again. That was the Python coroutine _write_declined, _hand_over and
 * asyncio.sleep (three coroutines and their frames) once a turn: with 16 writer tasks a turn
 * is ~20 small packets. Measured: a write at a turn's end, loop pass included, 54,400 -> 47,200
 * instructions (callgrind); budget.py's "16 tasks taking turns" 0.86 -> 0.77 us a packet.
 * Thrown into or closed while suspended there, nothing was queued: as in _hand_over.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stddef.h>

#include "_write_call.h"

/* The Python coroutine function PacketWriter._write_declined (unbound). Set by WriteMethod's
 * constructor. */
static PyObject *declined;
static PyObject *s_turn_over, *s_turn_resumed;

/* YIELDED: suspended at the end of a turn, nothing queued yet. */
enum { NEW = 0, DELEGATING = 1, DONE = 2, YIELDED = 3 };

typedef struct {
    PyObject_HEAD
    PyObject *args[5]; /* writer, data_source, stream, session_key, packet: until started */
    PyObject *inner;   /* _write_declined's coroutine, while it runs */
    int state;
} WriteCall;

static PyTypeObject WriteCallType;

static void call_forget_args(WriteCall *self) {
    for (int i = 0; i < 5; i++) Py_CLEAR(self->args[i]);
}

static void call_finish(WriteCall *self) {
    self->state = DONE;
    call_forget_args(self);
    Py_CLEAR(self->inner);
}

/* The writer's method `name` called with no arguments: 1 if it returned true, 0 if false, -1
 * with an error set. */
static int writer_says(WriteCall *self, PyObject *name) {
    PyObject *r = PyObject_CallMethodNoArgs(self->args[0], name);
    if (r == NULL) return -1;
    int yes = PyObject_IsTrue(r);
    Py_DECREF(r);
    return yes;
}

/* The fast path for this call's arguments: 1 with *result set to the Delivery (or NULL and
 * an error set), 0 when it declined. With turn_over non-NULL, that is set to 1 when it
 * declined only because the turn is over. */
static int fast_path(WriteCall *self, int *turn_over, PyObject **result) {
    PyObject *delivery = aiowriter_write(self->args, 5, turn_over);
    if (delivery == NULL || delivery != Py_None) {
        *result = delivery;
        return 1;
    }
    Py_DECREF(delivery);
    return 0;
}

static PySendResult call_send(PyObject *op, PyObject *arg, PyObject **result) {
    WriteCall *self = (WriteCall *)op;
    if (self->state == NEW || self->state == YIELDED) {
        if (self->state == NEW && arg != Py_None) {
            PyErr_SetString(PyExc_TypeError,
                            "can't send non-None value to a just-started coroutine");
            *result = NULL;
            return PYGEN_ERROR;
        }
        int resumed = self->state == YIELDED, turn_over = 0;
        self->state = DELEGATING; /* re-entered meanwhile: the inner check below refuses */
        /* Resumed after handing the loop over: a new turn starts (or the writer stopped). */
        if (resumed && writer_says(self, s_turn_resumed) < 0) goto failed;
        if (fast_path(self, resumed ? NULL : &turn_over, result)) goto finished;
        if (turn_over) {
            int suspend = writer_says(self, s_turn_over);
            if (suspend < 0) goto failed;
            if (suspend) {
                self->state = YIELDED;
                Py_INCREF(Py_None);
                *result = Py_None;
                return PYGEN_NEXT;
            }
            /* The loop came round since the turn began: a new one started at once. */
            if (fast_path(self, NULL, result)) goto finished;
        }
        PyObject *inner = PyObject_Vectorcall(declined, self->args, 5, NULL);
        call_forget_args(self);
        if (inner == NULL) {
            call_finish(self);
            *result = NULL;
            return PYGEN_ERROR;
        }
        self->inner = inner;
        arg = Py_None; /* it starts now (a value sent to resume went to the bare yield) */
    } else if (self->state == DONE) {
        PyErr_SetString(PyExc_RuntimeError, "cannot reuse already awaited coroutine");
        *result = NULL;
        return PYGEN_ERROR;
    }
    if (self->inner == NULL) {
        PyErr_SetString(PyExc_ValueError, "coroutine already executing");
        *result = NULL;
        return PYGEN_ERROR;
    }
    PySendResult status = PyIter_Send(self->inner, arg, result);
    if (status != PYGEN_NEXT) call_finish(self);
    return status;
failed:
    *result = NULL;
finished:
    call_finish(self);
    return *result == NULL ? PYGEN_ERROR : PYGEN_RETURN;
}

/* The outcome of call_send as a generator's send() gives it: the yielded value, or NULL with
 * StopIteration(result) or the error set. */
static PyObject *call_send_value(PyObject *op, PyObject *arg) {
    PyObject *result;
    PySendResult status = call_send(op, arg, &result);
    if (status == PYGEN_NEXT) return result;
    if (status == PYGEN_RETURN) {
        /* Wrapped: a tuple or an exception as StopIteration's argument would be taken apart. */
        PyObject *stop = PyObject_CallOneArg(PyExc_StopIteration, result);
        Py_DECREF(result);
        if (stop != NULL) {
            PyErr_SetObject(PyExc_StopIteration, stop);
            Py_DECREF(stop);
        }
    }
    return NULL;
}

static PyObject *call_iternext(PyObject *op) { return call_send_value(op, Py_None); }

static PyObject *call_send_method(PyObject *op, PyObject *arg) { return call_send_value(op, arg); }

static PyObject *call_throw(PyObject *op, PyObject *args) {
    WriteCall *self = (WriteCall *)op;
    if (self->state == DELEGATING && self->inner != NULL) {
        PyObject *inner = self->inner;
        Py_INCREF(inner);
        PyObject *throw = PyObject_GetAttrString(inner, "throw");
        PyObject *result = throw == NULL ? NULL : PyObject_Call(throw, args, NULL);
        Py_XDECREF(throw);
        Py_DECREF(inner);
        if (result == NULL) call_finish(self); /* it returned (StopIteration) or raised */
        return result;
    }
    if (self->state == DONE) {
        PyErr_SetString(PyExc_RuntimeError, "cannot reuse already awaited coroutine");
        return NULL;
    }
    /* Not started, or suspended at a turn's end with nothing queued: thrown into the Python
     * coroutine before it runs, which raises it and ends, exactly as a coroutine does. */
    PyObject *inner = PyObject_Vectorcall(declined, self->args, 5, NULL);
    call_finish(self);
    if (inner == NULL) return NULL;
    PyObject *throw = PyObject_GetAttrString(inner, "throw");
    PyObject *result = throw == NULL ? NULL : PyObject_Call(throw, args, NULL);
    Py_XDECREF(throw);
    Py_DECREF(inner);
    return result;
}

static PyObject *call_close(PyObject *op, PyObject *unused) {
    WriteCall *self = (WriteCall *)op;
    PyObject *inner = self->inner;
    self->inner = NULL;
    call_finish(self);
    if (inner == NULL) Py_RETURN_NONE;
    PyObject *result = PyObject_CallMethod(inner, "close", NULL);
    Py_DECREF(inner);
    return result;
}

static PyObject *call_await(PyObject *op) {
    Py_INCREF(op);
    return op;
}

/* cr_await: what the delegated coroutine waits on (asyncio's task introspection). */
static PyObject *call_cr_await(PyObject *op, void *closure) {
    WriteCall *self = (WriteCall *)op;
    if (self->inner == NULL) Py_RETURN_NONE;
    return PyObject_GetAttrString(self->inner, "cr_await");
}

static PyObject *call_cr_running(PyObject *op, void *closure) { Py_RETURN_FALSE; }

static PyObject *call_qualname(PyObject *op, void *closure) {
    return PyUnicode_FromString("PacketWriter.write_data");
}

static PyObject *call_repr(PyObject *op) {
    static const char *states[] = {"not awaited yet", "waiting", "finished",
                                   "handing the loop over"};
    return PyUnicode_FromFormat("<write_data call (%s) at %p>", states[((WriteCall *)op)->state],
                                op);
}

static void call_finalize(PyObject *op) {
    WriteCall *self = (WriteCall *)op;
    if (self->state != NEW || self->args[0] == NULL) return;
    PyObject *type, *value, *traceback;
    PyErr_Fetch(&type, &value, &traceback);
    /* As CPython warns for a coroutine never awaited: the packet was never written. */
    if (PyErr_WarnEx(PyExc_RuntimeWarning,
                     "coroutine 'PacketWriter.write_data' was never awaited", 1) < 0)
        PyErr_WriteUnraisable(op);
    PyErr_Restore(type, value, traceback);
}

static int call_traverse(PyObject *op, visitproc visit, void *arg) {
    WriteCall *self = (WriteCall *)op;
    for (int i = 0; i < 5; i++) Py_VISIT(self->args[i]);
    Py_VISIT(self->inner);
    return 0;
}

static int call_clear(PyObject *op) {
    WriteCall *self = (WriteCall *)op;
    call_forget_args(self);
    Py_CLEAR(self->inner);
    return 0;
}

static void call_dealloc(PyObject *op) {
    if (PyObject_CallFinalizerFromDealloc(op) < 0) return; /* resurrected */
    PyObject_GC_UnTrack(op);
    call_clear(op);
    PyObject_GC_Del(op);
}

static PyAsyncMethods call_as_async = {
    .am_await = call_await,
    .am_send = call_send,
};

static PyMethodDef call_methods[] = {
    {"send", call_send_method, METH_O, "send(value): as a coroutine's."},
    {"throw", call_throw, METH_VARARGS, "throw(type[, value[, traceback]]): as a coroutine's."},
    {"close", call_close, METH_NOARGS, "close(): as a coroutine's."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef call_getset[] = {
    {"cr_await", call_cr_await, NULL, NULL, NULL},
    {"cr_running", call_cr_running, NULL, NULL, NULL},
    {"__qualname__", call_qualname, NULL, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject WriteCallType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "aiowriter._writing._accel.WriteCall",
    .tp_doc = "The awaitable of one PacketWriter.write_data call (see _write_call.c).",
    .tp_basicsize = sizeof(WriteCall),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_as_async = &call_as_async,
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = call_iternext,
    .tp_methods = call_methods,
    .tp_getset = call_getset,
    .tp_repr = call_repr,
    .tp_finalize = call_finalize,
    .tp_traverse = call_traverse,
    .tp_clear = call_clear,
    .tp_dealloc = call_dealloc,
};

/* -- the method ------------------------------------------------------------------------------ */

/* A method descriptor (Py_TPFLAGS_METHOD_DESCRIPTOR: ``writer.write_data(...)`` calls it with
 * the writer first, binding nothing), with a __dict__ so functools.update_wrapper gives it the
 * Python function's name, docstring and signature (__wrapped__). */
typedef struct {
    PyObject_HEAD
    PyObject *full; /* the Python coroutine function: keyword calls, other arities */
    PyObject *dict;
    vectorcallfunc vectorcall;
} WriteMethod;

static PyObject *method_vectorcall(PyObject *op, PyObject *const *args, size_t nargsf,
                                   PyObject *kwnames) {
    WriteMethod *self = (WriteMethod *)op;
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (nargs != 5 || (kwnames != NULL && PyTuple_GET_SIZE(kwnames) != 0))
        return PyObject_Vectorcall(self->full, args, nargsf, kwnames);
    WriteCall *call = PyObject_GC_New(WriteCall, &WriteCallType);
    if (call == NULL) return NULL;
    for (int i = 0; i < 5; i++) {
        Py_INCREF(args[i]);
        call->args[i] = args[i];
    }
    call->inner = NULL;
    call->state = NEW;
    PyObject_GC_Track(call);
    return (PyObject *)call;
}

static PyObject *method_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    PyObject *full, *slow;
    if (!PyArg_ParseTuple(args, "OO:WriteMethod", &full, &slow)) return NULL;
    if (!PyCallable_Check(full) || !PyCallable_Check(slow)) {
        PyErr_SetString(PyExc_TypeError, "WriteMethod(write_data, write_declined): callables");
        return NULL;
    }
    WriteMethod *self = (WriteMethod *)type->tp_alloc(type, 0);
    if (self == NULL) return NULL;
    Py_INCREF(full);
    self->full = full;
    self->vectorcall = method_vectorcall;
    Py_INCREF(slow);
    Py_XSETREF(declined, slow);
    return (PyObject *)self;
}

static PyObject *method_get(PyObject *op, PyObject *obj, PyObject *type) {
    if (obj == NULL || obj == Py_None) {
        Py_INCREF(op);
        return op;
    }
    return PyMethod_New(op, obj);
}

static int method_traverse(PyObject *op, visitproc visit, void *arg) {
    Py_VISIT(((WriteMethod *)op)->full);
    Py_VISIT(((WriteMethod *)op)->dict);
    return 0;
}

static int method_clear(PyObject *op) {
    Py_CLEAR(((WriteMethod *)op)->full);
    Py_CLEAR(((WriteMethod *)op)->dict);
    return 0;
}

static void method_dealloc(PyObject *op) {
    PyObject_GC_UnTrack(op);
    method_clear(op);
    Py_TYPE(op)->tp_free(op);
}

static PyObject *method_repr(PyObject *op) {
    return PyUnicode_FromString("<C method PacketWriter.write_data>");
}

static PyGetSetDef method_getset[] = {
    {"__dict__", PyObject_GenericGetDict, PyObject_GenericSetDict, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject WriteMethodType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "aiowriter._writing._accel.WriteMethod",
    .tp_doc = "WriteMethod(write_data, write_declined): PacketWriter.write_data in C.",
    .tp_basicsize = sizeof(WriteMethod),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_METHOD_DESCRIPTOR |
                Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_vectorcall_offset = offsetof(WriteMethod, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_dictoffset = offsetof(WriteMethod, dict),
    .tp_getattro = PyObject_GenericGetAttr,
    .tp_setattro = PyObject_GenericSetAttr,
    .tp_descr_get = method_get,
    .tp_getset = method_getset,
    .tp_new = method_new,
    .tp_repr = method_repr,
    .tp_traverse = method_traverse,
    .tp_clear = method_clear,
    .tp_dealloc = method_dealloc,
};

int write_call_init(PyObject *module) {
    if (s_turn_over == NULL && (s_turn_over = PyUnicode_InternFromString("_turn_over")) == NULL)
        return -1;
    if (s_turn_resumed == NULL &&
        (s_turn_resumed = PyUnicode_InternFromString("_turn_resumed")) == NULL)
        return -1;
    if (PyType_Ready(&WriteCallType) < 0 || PyType_Ready(&WriteMethodType) < 0) return -1;
    Py_INCREF(&WriteCallType);
    if (PyModule_AddObject(module, "WriteCall", (PyObject *)&WriteCallType) < 0) {
        Py_DECREF(&WriteCallType);
        return -1;
    }
    Py_INCREF(&WriteMethodType);
    if (PyModule_AddObject(module, "WriteMethod", (PyObject *)&WriteMethodType) < 0) {
        Py_DECREF(&WriteMethodType);
        return -1;
    }
    return 0;
}

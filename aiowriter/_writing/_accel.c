/* The accepting fast path of PacketWriter.write_data in C: Lane.remembered and Lane.offer
 * (with Lane.push and the Delivery it makes), the same steps as their Python versions in
 * lanes.py, which stay the reference (tests/test_accel.py compares the two on random lanes and
 * packets) and the fallback where this module was not built.
 *
 * Why C: on the benchmark's small 3x3 packets these steps were ~1.4 us of Python per packet
 * (the layout check ~0.5 us, the room check and queuing ~0.5 us, the Delivery ~0.25 us), more
 * than raw aiokafka spends on a whole packet. Here they are a few loads and stores.
 *
 * Lane, Budget, Ledger and Delivery are Python classes with __slots__: bind() reads where each
 * slot sits in their instances (the offsets of their member descriptors), so the fast path
 * reads and writes those slots directly instead of looking attributes up by name (Lane's and
 * Budget's counters are machine words in their C bases, LaneCounters and BudgetCounters); so does
 * bind_writer() for what write() reads of a PacketWriter and of QueueLimits. Anything
 * unusual (an unset slot, a number too big for a machine word, a full ledger) is handed to the
 * Python method of the same name, so the result is always the Python version's.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

#include "../_slots.h"
#include "_write_call.h"

typedef struct {
    PyTypeObject *lane_type, *budget_type, *ledger_type, *delivery_type;
    Py_ssize_t span;
    /* Lane */
    Py_ssize_t entries, putters, woken, limits, budget, task, memo, ledgers, last, wakeup,
        wake_at_bytes, ready;
    /* Ledger, Delivery (Lane's and Budget's counters: LaneCounters, BudgetCounters) */
    Py_ssize_t first, essential, d_ledger, d_seq, d_size;
} Layout;

static Layout L;
static int bound = 0;

/* The numbers write() changes for every packet, as machine words: Lane.pushed and Lane.bytes
 * (LaneCounters), Budget.used and Budget.limit (BudgetCounters), the C bases of those classes
 * (lanes.py; plain __slots__ classes stand in where this module is not built). As ints in
 * __slots__, each packet made three new ones and freed three: ~15% of a write()'s instructions
 * (callgrind). Python reads and sets them as ints, as before (counter_get, counter_set). */
typedef struct {
    PyObject_HEAD
    Py_ssize_t pushed, bytes;
} LaneCounters;

typedef struct {
    PyObject_HEAD
    Py_ssize_t used, limit;
} BudgetCounters;

#define LANE_COUNTERS(lane) ((LaneCounters *)(lane))
#define BUDGET_COUNTERS(budget) ((BudgetCounters *)(budget))

/* Get and set as ints: a value that is not an int, or too big, is refused before anything is
 * stored (a T_PYSSIZET member would store -1 first), and the counters cannot be deleted. */
static PyObject *counter_get(PyObject *self, void *offset) {
    return PyLong_FromSsize_t(*(Py_ssize_t *)((char *)self + (Py_ssize_t)offset));
}

static int counter_set(PyObject *self, PyObject *value, void *offset) {
    if (value == NULL) {
        PyErr_SetString(PyExc_TypeError, "a counter cannot be deleted");
        return -1;
    }
    if (!PyLong_Check(value)) {
        PyErr_Format(PyExc_TypeError, "a counter is an int, not %.100s", Py_TYPE(value)->tp_name);
        return -1;
    }
    Py_ssize_t n = PyLong_AsSsize_t(value);
    if (n == -1 && PyErr_Occurred()) return -1;
    *(Py_ssize_t *)((char *)self + (Py_ssize_t)offset) = n;
    return 0;
}

#define COUNTER(name, type, field, doc)                                                       \
    {name, counter_get, counter_set, doc, (void *)offsetof(type, field)}

static PyGetSetDef lane_counters_getset[] = {
    COUNTER("pushed", LaneCounters, pushed,
            "The number the next packet queued gets (packets are numbered in write order)."),
    COUNTER("bytes", LaneCounters, bytes, "Bytes queued, not yet sent."),
    {NULL},
};

static PyGetSetDef budget_counters_getset[] = {
    COUNTER("used", BudgetCounters, used, "Bytes queued on every lane."),
    COUNTER("limit", BudgetCounters, limit, "The most that may be queued."),
    {NULL},
};

/* The two counter types differ only in their fields. */
#define COUNTERS_TYPE(name, type, doc, getset)                                               \
    {PyVarObject_HEAD_INIT(NULL, 0).tp_name = "aiowriter._writing._accel." name,              \
     .tp_basicsize = sizeof(type),                                                            \
     .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,                                    \
     .tp_doc = doc,                                                                           \
     .tp_getset = getset,                                                                     \
     .tp_new = PyType_GenericNew}

static PyTypeObject LaneCountersType = COUNTERS_TYPE(
    "LaneCounters", LaneCounters,
    "Lane's packet and byte counters, as machine words (the base of lanes.Lane).",
    lane_counters_getset);

static PyTypeObject BudgetCountersType = COUNTERS_TYPE(
    "BudgetCounters", BudgetCounters,
    "Budget's byte counters, as machine words (the base of lanes.Budget).",
    budget_counters_getset);
static PyObject *s_append, *s_extend, *s_done, *s_set_result, *s_remembered, *s_offer, *s_push,
    *s_max_packets, *s_max_bytes, *s_state, *s_running, *s_loop, *s_lanes, *s_clock, *s_turn_ends;
/* asyncio's _get_running_loop (its C version where built). */
static PyObject *get_running_loop;
/* asyncio's C Future and Task types and their done() (method descriptors), and deque.append:
 * called through the descriptor for exactly those types, a call skips the lookup by name
 * (_PyObject_GetMethod, _PyType_Lookup: ~12% of write()'s time, perf, for 3-4 calls a
 * packet). Any other type (a subclass, the pure-Python Future) is called by name. NULL where
 * _asyncio is missing. */
static PyTypeObject *future_type, *task_type, *deque_type;
static PyObject *future_done, *task_done, *deque_append;

/* fut.done(): 1, 0, or -1 with an error set. */
static int is_done(PyObject *fut) {
    PyObject *r;
    if (future_done != NULL && Py_IS_TYPE(fut, future_type))
        r = PyObject_Vectorcall(future_done, &fut, 1, NULL);
    else if (task_done != NULL && Py_IS_TYPE(fut, task_type))
        r = PyObject_Vectorcall(task_done, &fut, 1, NULL);
    else
        r = PyObject_CallMethodNoArgs(fut, s_done);
    if (r == NULL) return -1;
    int t = PyObject_IsTrue(r);
    Py_DECREF(r);
    return t;
}

/* queue.append(item): 0, or -1 with an error set. */
static int append_to(PyObject *queue, PyObject *item) {
    PyObject *r;
    if (deque_append != NULL && Py_IS_TYPE(queue, deque_type)) {
        PyObject *args[2] = {queue, item};
        r = PyObject_Vectorcall(deque_append, args, 2, NULL);
    } else {
        r = PyObject_CallMethodOneArg(queue, s_append, item);
    }
    if (r == NULL) return -1;
    Py_DECREF(r);
    return 0;
}

/* time.monotonic, the writer's usual clock (PacketWriter._clock), and the same value without
 * calling it through Python: the call was 6% of a write()'s instructions (callgrind), and half
 * of that is saved. */
static PyObject *time_monotonic;

static PyObject *monotonic_now(void) {
#if PY_VERSION_HEX >= 0x030D0000
    PyTime_t t;
    if (PyTime_Monotonic(&t) < 0) return NULL;
    return PyFloat_FromDouble(PyTime_AsSecondsDouble(t));
#else
    return PyFloat_FromDouble(_PyTime_AsSecondsDouble(_PyTime_GetMonotonicClock()));
#endif
}

/* Set in a child process after fork() (forked(), registered in accel.py): from then on,
 * in_loop_thread asks asyncio, as before. */
static int forked = 0;
static PyObject *s_thread_id;

/* bind_encoded(): a builder's EncodedPacket, wrapped in its Packet envelope here as
 * AcceptMixin._accept does (see encoded_write). */
typedef struct {
    PyTypeObject *type;
    Py_ssize_t type_, content, is_essential, checked;
    PyObject *type_fields, *session_fields, *envelope; /* wire.py's caches, its C envelope */
} Encoded;
static Encoded E;
static int encoded_bound = 0;

/* bind_writer(): where PacketWriter's and QueueLimits' slots are. write() reads the writer's
 * state, loop, lanes, clock and turn from them, and for a builder's packet its record keys,
 * size limit and id counter (attribute lookups by name, through a class with five bases, were
 * ~a quarter of its time); room() reads the lane's limits. Any other type (a subclass, a
 * test's stand-in) is read by name, as before. */
typedef struct {
    PyTypeObject *type, *limits_type;
    Py_ssize_t state, loop, lanes, clock, turn_ends, keys, max_value, next_id, max_packets,
        max_bytes, front_lane;
} Front;
static Front W;
static int writer_bound = 0;
static PyObject *s_keys, *s_max_value, *s_next_id;

/* Store `value` (a new reference) in a slot, releasing what it held. */
static inline void set_slot(PyObject *obj, Py_ssize_t off, PyObject *value) {
    PyObject *old = SLOT(obj, off);
    SLOT(obj, off) = value;
    Py_XDECREF(old);
}

/* The slot's int as a machine word; -1 with no error set when it is unset or not small. */
static inline Py_ssize_t slot_ssize(PyObject *obj, Py_ssize_t off) {
    PyObject *v = SLOT(obj, off);
    if (v == NULL || !PyLong_CheckExact(v)) return -1;
    Py_ssize_t n = PyLong_AsSsize_t(v);
    if (n == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        return -1;
    }
    return n;
}

/* A writer's attribute `name` (a new reference): from its slot at `off` when `slotted`, else
 * looked up by name. An unset slot raises AttributeError, as the lookup would. */
static inline PyObject *front_attr(PyObject *self, int slotted, Py_ssize_t off, PyObject *name) {
    if (!slotted) return PyObject_GetAttr(self, name);
    PyObject *v = SLOT(self, off);
    if (v == NULL) {
        PyErr_SetObject(PyExc_AttributeError, name);
        return NULL;
    }
    Py_INCREF(v);
    return v;
}

/* A binding's new references taken (`now`) and the previous binding's released (`was`, NULL
 * before the first): the objects it reads stay alive as long as it is in force. */
static void hold(PyObject **was, PyObject **now, int n) {
    for (int i = 0; i < n; i++) Py_INCREF(now[i]);
    for (int i = 0; i < n; i++) Py_XDECREF(was[i]);
}

static PyObject *bind(PyObject *module, PyObject *args) {
    PyTypeObject *lane, *budget, *ledger, *delivery;
    Py_ssize_t span;
    if (!PyArg_ParseTuple(args, "O!O!O!O!n", &PyType_Type, &lane, &PyType_Type, &budget,
                          &PyType_Type, &ledger, &PyType_Type, &delivery, &span))
        return NULL;
    if (!PyType_IsSubtype(lane, &LaneCountersType) ||
        !PyType_IsSubtype(budget, &BudgetCountersType)) {
        PyErr_SetString(PyExc_TypeError,
                        "bind: Lane and Budget must derive from LaneCounters and BudgetCounters");
        return NULL;
    }
    Layout l;
    l.lane_type = lane;
    l.budget_type = budget;
    l.ledger_type = ledger;
    l.delivery_type = delivery;
    l.span = span;
    if (member_offset(lane, "entries", &l.entries) || member_offset(lane, "putters", &l.putters) ||
        member_offset(lane, "woken", &l.woken) || member_offset(lane, "limits", &l.limits) ||
        member_offset(lane, "budget", &l.budget) ||
        member_offset(lane, "task", &l.task) || member_offset(lane, "memo", &l.memo) ||
        member_offset(lane, "ledgers", &l.ledgers) ||
        member_offset(lane, "last", &l.last) || member_offset(lane, "wakeup", &l.wakeup) ||
        member_offset(lane, "wake_at_bytes", &l.wake_at_bytes) ||
        member_offset(lane, "ready", &l.ready) ||
        member_offset(ledger, "first", &l.first) ||
        member_offset(ledger, "essential", &l.essential) ||
        member_offset(delivery, "_ledger", &l.d_ledger) ||
        member_offset(delivery, "_seq", &l.d_seq) || member_offset(delivery, "size", &l.d_size))
        return NULL;
    /* The classes must stay alive as long as the offsets are used. */
    PyObject *was[4] = {(PyObject *)L.lane_type, (PyObject *)L.budget_type,
                        (PyObject *)L.ledger_type, (PyObject *)L.delivery_type};
    PyObject *now[4] = {(PyObject *)lane, (PyObject *)budget, (PyObject *)ledger,
                        (PyObject *)delivery};
    hold(was, now, 4);
    L = l;
    bound = 1;
    Py_RETURN_NONE;
}

/* bind_encoded(EncodedPacket, type_fields, session_fields, envelope): where EncodedPacket's
 * slots are, and the Packet.type / Packet.session_key field caches and envelope function of
 * wire.encode_packet. Without it, write() leaves every EncodedPacket to Python. */
static PyObject *bind_encoded(PyObject *module, PyObject *args) {
    PyTypeObject *type;
    PyObject *type_fields, *session_fields, *envelope;
    if (!PyArg_ParseTuple(args, "O!O!O!O", &PyType_Type, &type, &PyDict_Type, &type_fields,
                          &PyDict_Type, &session_fields, &envelope))
        return NULL;
    if (!PyCallable_Check(envelope)) {
        PyErr_SetString(PyExc_TypeError, "bind_encoded: envelope must be callable");
        return NULL;
    }
    Encoded e = {type, 0, 0, 0, 0, type_fields, session_fields, envelope};
    if (member_offset(type, "type", &e.type_) || member_offset(type, "content", &e.content) ||
        member_offset(type, "is_essential", &e.is_essential) ||
        member_offset(type, "_checked", &e.checked))
        return NULL;
    PyObject *was[4] = {(PyObject *)E.type, E.type_fields, E.session_fields, E.envelope};
    PyObject *now[4] = {(PyObject *)type, type_fields, session_fields, envelope};
    hold(was, now, 4);
    E = e;
    encoded_bound = 1;
    Py_RETURN_NONE;
}

/* bind_writer(PacketWriter, QueueLimits): see Front. */
static PyObject *bind_writer(PyObject *module, PyObject *args) {
    PyTypeObject *type, *limits;
    if (!PyArg_ParseTuple(args, "O!O!", &PyType_Type, &type, &PyType_Type, &limits)) return NULL;
    Front w;
    w.type = type;
    w.limits_type = limits;
    if (member_offset(type, "_state", &w.state) || member_offset(type, "_loop", &w.loop) ||
        member_offset(type, "_lanes", &w.lanes) || member_offset(type, "_clock", &w.clock) ||
        member_offset(type, "_turn_ends", &w.turn_ends) || member_offset(type, "_keys", &w.keys) ||
        member_offset(type, "_max_value", &w.max_value) ||
        member_offset(type, "_next_id", &w.next_id) ||
        member_offset(type, "_front_lane", &w.front_lane) ||
        member_offset(limits, "max_packets_per_stream", &w.max_packets) ||
        member_offset(limits, "max_bytes_per_stream", &w.max_bytes))
        return NULL;
    PyObject *was[2] = {(PyObject *)W.type, (PyObject *)W.limits_type};
    PyObject *now[2] = {(PyObject *)type, (PyObject *)limits};
    hold(was, now, 2);
    W = w;
    writer_bound = 1;
    Py_RETURN_NONE;
}

/* A limit of the lane's QueueLimits (a new reference): from its slot when bound, else by name. */
static inline PyObject *limit_attr(PyObject *limits, Py_ssize_t off, PyObject *name) {
    return front_attr(limits, writer_bound && Py_IS_TYPE(limits, W.limits_type), off, name);
}

static int check_lane(PyObject *lane) {
    if (!bound) {
        PyErr_SetString(PyExc_RuntimeError, "aiowriter._writing._accel: bind() was not called");
        return -1;
    }
    if (!PyObject_TypeCheck(lane, L.lane_type)) {
        PyErr_Format(PyExc_TypeError, "expected a Lane, got %.100s", Py_TYPE(lane)->tp_name);
        return -1;
    }
    return 0;
}

/* A queue entry made here: the five fields of lanes.py's Entry tuple (record key, value,
 * essential, enqueued at, size), read the same way (entry[i], unpacking, len, == a tuple), in
 * an object the garbage collector does not know. Why not a tuple: every tuple allocation
 * counts toward the next young collection until it is freed, even after the collector
 * untracks it, so a queued packet was one allocation in 700 of a young collection; with
 * ~400k packets/s those passes promoted the per-batch objects alive at the time (futures,
 * timers, InFlight, ...) to the old generation and so caused a full collection (13-20 ms of
 * this process's heap) every ~0.2 s: the event-loop lag p99 of write_data_many on 16 streams.
 * Safe outside the collector because it can hold only objects that are not containers
 * (make_entry checks): no reference cycle can pass through it. */
typedef struct {
    PyObject_HEAD
    PyObject *items[5];
} QueuedEntry;

static void queued_dealloc(PyObject *self) {
    for (int i = 0; i < 5; i++) Py_XDECREF(((QueuedEntry *)self)->items[i]);
    Py_TYPE(self)->tp_free(self);
}

static Py_ssize_t queued_length(PyObject *self) { return 5; }

static PyObject *queued_item(PyObject *self, Py_ssize_t i) {
    if (i < 0 || i >= 5) {
        PyErr_SetString(PyExc_IndexError, "queue entry index out of range");
        return NULL;
    }
    PyObject *item = ((QueuedEntry *)self)->items[i];
    Py_INCREF(item);
    return item;
}

static PyObject *queued_tuple(PyObject *self) {
    PyObject **items = ((QueuedEntry *)self)->items;
    return PyTuple_Pack(5, items[0], items[1], items[2], items[3], items[4]);
}

/* entry[i] (negative too) directly; slices and anything else as the tuple would answer. (No
 * per-packet loop indexes entries from Python any more: queued_times reads them in C.) */
static PyObject *queued_subscript(PyObject *self, PyObject *key) {
    if (PyIndex_Check(key)) {
        Py_ssize_t i = PyNumber_AsSsize_t(key, PyExc_IndexError);
        if (i == -1 && PyErr_Occurred()) return NULL;
        return queued_item(self, i < 0 ? i + 5 : i);
    }
    PyObject *tuple = queued_tuple(self);
    if (tuple == NULL) return NULL;
    PyObject *result = PyObject_GetItem(tuple, key);
    Py_DECREF(tuple);
    return result;
}

static PyTypeObject QueuedEntryType;

/* Compared as the tuple it stands for, with tuples and with its own kind. */
static PyObject *queued_richcompare(PyObject *a, PyObject *b, int op) {
    PyObject *ta = NULL, *tb = NULL, *result;
    if (!PyTuple_Check(b) && !Py_IS_TYPE(b, &QueuedEntryType)) Py_RETURN_NOTIMPLEMENTED;
    if (!PyTuple_Check(a) && !Py_IS_TYPE(a, &QueuedEntryType)) Py_RETURN_NOTIMPLEMENTED;
    ta = Py_IS_TYPE(a, &QueuedEntryType) ? queued_tuple(a) : (Py_INCREF(a), a);
    tb = ta == NULL ? NULL : Py_IS_TYPE(b, &QueuedEntryType) ? queued_tuple(b) : (Py_INCREF(b), b);
    result = tb == NULL ? NULL : PyObject_RichCompare(ta, tb, op);
    Py_XDECREF(ta);
    Py_XDECREF(tb);
    return result;
}

static PyObject *queued_repr(PyObject *self) {
    PyObject *tuple = queued_tuple(self);
    if (tuple == NULL) return NULL;
    PyObject *result = PyUnicode_FromFormat("QueuedEntry%R", tuple);
    Py_DECREF(tuple);
    return result;
}

static PySequenceMethods queued_as_sequence = {
    .sq_length = queued_length,
    .sq_item = queued_item,
};
static PyMappingMethods queued_as_mapping = {
    .mp_length = queued_length,
    .mp_subscript = queued_subscript,
};

static PyTypeObject QueuedEntryType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "aiowriter._writing._accel.QueuedEntry",
    .tp_basicsize = sizeof(QueuedEntry),
    .tp_dealloc = queued_dealloc,
    .tp_repr = queued_repr,
    .tp_as_sequence = &queued_as_sequence,
    .tp_as_mapping = &queued_as_mapping,
    .tp_hash = PyObject_HashNotImplemented,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .tp_doc = "A queued packet (record key, value, essential, enqueued at, size), made in C.",
    .tp_richcompare = queued_richcompare,
};

/* A new queue entry of these five: a QueuedEntry when none of them is a container (always, for
 * the bytes, bool, float and int the fast path queues), else the tuple. */
static PyObject *make_entry(PyObject *key, PyObject *value, PyObject *essential, PyObject *at,
                            PyObject *size) {
    if (PyObject_IS_GC(key) || PyObject_IS_GC(value) || PyObject_IS_GC(essential) ||
        PyObject_IS_GC(at) || PyObject_IS_GC(size))
        return PyTuple_Pack(5, key, value, essential, at, size);
    QueuedEntry *entry = PyObject_New(QueuedEntry, &QueuedEntryType);
    if (entry == NULL) return NULL;
    PyObject *items[5] = {key, value, essential, at, size};
    for (int i = 0; i < 5; i++) {
        Py_INCREF(items[i]);
        entry->items[i] = items[i];
    }
    return (PyObject *)entry;
}

/* The fields of a queue entry, a QueuedEntry or a tuple of at least five (as Python makes
 * them); NULL for anything else. */
static inline PyObject **entry_items(PyObject *entry) {
    if (Py_IS_TYPE(entry, &QueuedEntryType)) return ((QueuedEntry *)entry)->items;
    if (PyTuple_CheckExact(entry) && PyTuple_GET_SIZE(entry) >= 5)
        return &PyTuple_GET_ITEM(entry, 0);
    return NULL;
}

/* Whether every bit of `mask` set in `data` equals `expected`'s: the little-endian big-integer
 * test `int.from_bytes(data, "little") & mask == expected` of Lane.remembered, bytewise. */
static int masked_equal(const unsigned char *data, const unsigned char *mask,
                        const unsigned char *expected, Py_ssize_t n) {
    Py_ssize_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t d, m, e;
        memcpy(&d, data + i, 8);
        memcpy(&m, mask + i, 8);
        memcpy(&e, expected + i, 8);
        if ((d & m) != e) return 0;
    }
    for (; i < n; i++)
        if ((data[i] & mask[i]) != expected[i]) return 0;
    return 1;
}

/* remembered(lane, packet, session_key, now) -> Entry | None: Lane.remembered. The memo is
 * (session key, length, mask, expected, essential, record key, size, mask bytes, expected
 * bytes); the last two are the big integers as little-endian bytes of the packet's length. */
static PyObject *remembered_impl(PyObject *lane, PyObject *packet, PyObject *session_key,
                                 PyObject *now) {
    PyObject *memo = SLOT(lane, L.memo);
    if (!PyBytes_CheckExact(packet) || memo == NULL || memo == Py_None) Py_RETURN_NONE;
    if (!PyTuple_CheckExact(memo) || PyTuple_GET_SIZE(memo) != 9)
        return PyObject_CallMethodObjArgs(lane, s_remembered, packet, session_key, now, NULL);
    Py_ssize_t n = PyBytes_GET_SIZE(packet);
    PyObject *mask = PyTuple_GET_ITEM(memo, 7), *expected = PyTuple_GET_ITEM(memo, 8);
    if (!PyBytes_CheckExact(mask) || !PyBytes_CheckExact(expected) ||
        PyBytes_GET_SIZE(mask) != n || PyBytes_GET_SIZE(expected) != n)
        Py_RETURN_NONE; /* another length than the memo's */
    int same = PyObject_RichCompareBool(session_key, PyTuple_GET_ITEM(memo, 0), Py_EQ);
    if (same < 0) return NULL;
    if (!same || !masked_equal((const unsigned char *)PyBytes_AS_STRING(packet),
                               (const unsigned char *)PyBytes_AS_STRING(mask),
                               (const unsigned char *)PyBytes_AS_STRING(expected), n))
        Py_RETURN_NONE;
    return make_entry(PyTuple_GET_ITEM(memo, 5), packet, PyTuple_GET_ITEM(memo, 4), now,
                      PyTuple_GET_ITEM(memo, 6));
}

static PyObject *python_offer(PyObject *lane, PyObject *entry) {
    return PyObject_CallMethodOneArg(lane, s_offer, entry);
}

/* Wake the lane's drainer if it waits for `bytes` queued (Lane.wake_at_bytes), as Lane.push
 * does: 0, or -1 with an error set. The slot is cleared once it is woken, as Lane.push does, so
 * the packets written before the drainer runs do not each ask the future again. */
static int wake_drainer(PyObject *lane, Py_ssize_t bytes) {
    PyObject *wakeup = SLOT(lane, L.wakeup);
    if (wakeup == NULL || wakeup == Py_None) return 0;
    Py_ssize_t at = slot_ssize(lane, L.wake_at_bytes);
    if (at < 0 || bytes < at) return 0;
    Py_INCREF(Py_None);
    SLOT(lane, L.wakeup) = Py_None; /* its reference moves to `wakeup`, released below */
    int done = is_done(wakeup);
    PyObject *r = done == 0 ? PyObject_CallMethodOneArg(wakeup, s_set_result, Py_None) : NULL;
    Py_DECREF(wakeup);
    if (done < 0 || (done == 0 && r == NULL)) return -1;
    Py_XDECREF(r);
    return 0;
}

/* Lane.push for an entry whose room was checked: its Delivery. */
static PyObject *push(PyObject *lane, PyObject *entry, Py_ssize_t size, Py_ssize_t bytes,
                      PyObject *budget, Py_ssize_t used) {
    Py_ssize_t seq = LANE_COUNTERS(lane)->pushed;
    PyObject *ledgers = SLOT(lane, L.ledgers);
    if (seq < 0 || ledgers == NULL) return PyObject_CallMethodOneArg(lane, s_push, entry);
    PyObject *ledger = PySequence_GetItem(ledgers, -1);
    if (ledger == NULL) return NULL;
    Py_ssize_t first = PyObject_TypeCheck(ledger, L.ledger_type) ? slot_ssize(ledger, L.first)
                                                                  : -1;
    PyObject *essential_map = first >= 0 ? SLOT(ledger, L.essential) : NULL;
    if (first < 0 || seq - first >= L.span || essential_map == NULL ||
        !PyDict_CheckExact(essential_map)) {
        /* A new ledger starts here (once per SPAN packets): Python makes it. */
        Py_DECREF(ledger);
        return PyObject_CallMethodOneArg(lane, s_push, entry);
    }
    PyObject **items = entry_items(entry); /* offer_impl checked it */
    PyObject *size_obj = items[4];
    PyObject *seq_obj = PyLong_FromSsize_t(seq);
    PyObject *delivery = L.delivery_type->tp_alloc(L.delivery_type, 0);
    if (seq_obj == NULL || delivery == NULL) goto error;
    if (items[2] == Py_True &&
        PyDict_SetItem(essential_map, seq_obj, size_obj) < 0)
        goto error;
    if (append_to(SLOT(lane, L.entries), entry) < 0) goto error;
    LANE_COUNTERS(lane)->pushed = seq + 1;
    LANE_COUNTERS(lane)->bytes = bytes + size;
    BUDGET_COUNTERS(budget)->used = used + size;
    Py_INCREF(seq_obj);
    Py_INCREF(size_obj);
    set_slot(delivery, L.d_ledger, ledger); /* takes the reference GetItem gave */
    set_slot(delivery, L.d_seq, seq_obj);
    set_slot(delivery, L.d_size, size_obj);
    Py_DECREF(seq_obj);
    Py_INCREF(delivery);
    set_slot(lane, L.last, delivery);
    if (wake_drainer(lane, bytes + size) < 0) {
        Py_DECREF(delivery);
        return NULL;
    }
    return delivery;
error:
    Py_DECREF(ledger);
    Py_XDECREF(seq_obj);
    Py_XDECREF(delivery);
    return NULL;
}

/* Whether `size` more bytes may be queued on the lane now, as Lane.offer decides: 1 (with the
 * lane's bytes, its budget and the budget's use filled in), 0 (no room, or a writer waits
 * ahead), -1 (an error is set) or -2 (a slot is unusual: Lane.offer decides). */
static int room(PyObject *lane, Py_ssize_t size, Py_ssize_t *bytes_out, PyObject **budget_out,
                Py_ssize_t *used_out) {
    PyObject *putters = SLOT(lane, L.putters), *woken = SLOT(lane, L.woken),
             *entries = SLOT(lane, L.entries), *limits = SLOT(lane, L.limits),
             *budget = SLOT(lane, L.budget), *task = SLOT(lane, L.task);
    if (putters == NULL || woken == NULL || entries == NULL || limits == NULL ||
        budget == NULL || task == NULL || !PyObject_TypeCheck(budget, L.budget_type))
        return -2;
    Py_ssize_t waiting = PyObject_Length(putters);
    if (waiting < 0) return -1;
    if (waiting || woken != Py_None) return 0;
    Py_ssize_t bytes = LANE_COUNTERS(lane)->bytes, used = BUDGET_COUNTERS(budget)->used,
               limit = BUDGET_COUNTERS(budget)->limit;
    if (size < 0 || bytes < 0 || used < 0 || limit < 0) return -2;
    Py_ssize_t n = PyObject_Length(entries);
    if (n < 0) return -1;
    PyObject *max_packets = limit_attr(limits, W.max_packets, s_max_packets);
    if (max_packets == NULL) return -1;
    Py_ssize_t maxp = PyLong_AsSsize_t(max_packets);
    Py_DECREF(max_packets);
    if (maxp == -1 && PyErr_Occurred()) return -1;
    if (n >= maxp) return 0;
    if (n) {
        PyObject *max_bytes = limit_attr(limits, W.max_bytes, s_max_bytes);
        if (max_bytes == NULL) return -1;
        Py_ssize_t maxb = PyLong_AsSsize_t(max_bytes);
        Py_DECREF(max_bytes);
        if (maxb == -1 && PyErr_Occurred()) return -1;
        if (bytes + size > maxb) return 0;
    }
    if (used + size > limit && used != 0) return 0;
    if (task == Py_None) return 0;
    int done = is_done(task);
    if (done < 0) return -1;
    if (done) return 0;
    *bytes_out = bytes;
    *budget_out = budget;
    *used_out = used;
    return 1;
}

/* Lane.offer for a checked lane. */
static PyObject *offer_impl(PyObject *lane, PyObject *entry) {
    PyObject **items = entry_items(entry);
    if (items == NULL || (PyTuple_CheckExact(entry) && PyTuple_GET_SIZE(entry) != 5))
        return python_offer(lane, entry);
    PyObject *size_obj = items[4];
    Py_ssize_t size = PyLong_CheckExact(size_obj) ? PyLong_AsSsize_t(size_obj) : -1;
    if (size < 0) {
        PyErr_Clear();
        return python_offer(lane, entry);
    }
    Py_ssize_t bytes, used;
    PyObject *budget;
    switch (room(lane, size, &bytes, &budget, &used)) {
    case 1:
        return push(lane, entry, size, bytes, budget, used);
    case 0:
        Py_RETURN_NONE;
    case -2:
        return python_offer(lane, entry);
    default:
        return NULL;
    }
}

static Py_ssize_t varint_size(unsigned long long v) {
    Py_ssize_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

/* A builder's EncodedPacket (checked, so well-formed by construction) queued as
 * AcceptMixin._accept and Lane.offer would: wrapped in its Packet envelope with the writer's next
 * id, its record key, the size limit. Its Delivery; None, with no id used, when Python must
 * decide (a field or record key not cached yet, a size near a limit, no room, unusual slots);
 * NULL on error. The room is checked for the largest envelope the packet can have (an id of
 * ten bytes) before the id is taken, so ids stay consecutive. */
static PyObject *encoded_write(PyObject *self, int slotted, PyObject *lane, PyObject *packet,
                               PyObject *session_key, PyObject *now) {
    PyObject *type = SLOT(packet, E.type_), *content = SLOT(packet, E.content),
             *essential = SLOT(packet, E.is_essential);
    if (SLOT(packet, E.checked) != Py_True || type == NULL || !PyUnicode_CheckExact(type) ||
        content == NULL || !PyBytes_CheckExact(content) ||
        (essential != Py_True && essential != Py_False))
        Py_RETURN_NONE;
    PyObject *type_field = PyDict_GetItemWithError(E.type_fields, type); /* borrowed */
    if (type_field == NULL) {
        if (PyErr_Occurred()) return NULL;
        Py_RETURN_NONE;
    }
    PyObject *session_field = PyDict_GetItemWithError(E.session_fields, session_key);
    if (session_field == NULL) {
        if (PyErr_Occurred()) return NULL;
        Py_RETURN_NONE;
    }
    if (!PyBytes_CheckExact(type_field) || !PyBytes_CheckExact(session_field))
        Py_RETURN_NONE;
    PyObject *result = NULL, *keys = NULL, *max_value = NULL, *next_id = NULL, *id = NULL,
             *value = NULL, *entry = NULL;
    if ((keys = front_attr(self, slotted, W.keys, s_keys)) == NULL) goto out;
    if (!PyDict_CheckExact(keys)) goto none;
    PyObject *key = PyDict_GetItemWithError(keys, session_key); /* borrowed: keys holds it */
    if (key == NULL) {
        if (PyErr_Occurred()) goto out;
        goto none;
    }
    if (!PyBytes_CheckExact(key)) goto none;
    if ((max_value = front_attr(self, slotted, W.max_value, s_max_value)) == NULL) goto out;
    Py_ssize_t limit = PyLong_CheckExact(max_value) ? PyLong_AsSsize_t(max_value) : -1;
    if (limit < 0) {
        PyErr_Clear();
        goto none;
    }
    Py_ssize_t n = PyBytes_GET_SIZE(content);
    /* encode_packet's layout: type, session key, is_essential, content, id (<= 11 bytes). */
    Py_ssize_t largest = PyBytes_GET_SIZE(type_field) + PyBytes_GET_SIZE(session_field) +
                         (essential == Py_True ? 2 : 0) +
                         (n ? 1 + varint_size((unsigned long long)n) + n : 0) + 11 +
                         PyBytes_GET_SIZE(key);
    if (largest > limit) goto none; /* maybe too large: Python says so, or queues it */
    Py_ssize_t bytes, used;
    PyObject *budget;
    int fits = room(lane, largest, &bytes, &budget, &used);
    if (fits < 0 && fits != -2) goto out;
    if (fits != 1) goto none;
    /* From here the packet is queued: the id is taken. */
    if ((next_id = front_attr(self, slotted, W.next_id, s_next_id)) == NULL) goto out;
    if ((id = PyObject_CallNoArgs(next_id)) == NULL) goto out;
    PyObject *call[5] = {type_field, session_field, essential, content, id};
    if ((value = PyObject_Vectorcall(E.envelope, call, 5, NULL)) == NULL) goto out;
    if (!PyBytes_CheckExact(value)) {
        PyErr_SetString(PyExc_TypeError, "envelope() did not return bytes");
        goto out;
    }
    Py_ssize_t size = PyBytes_GET_SIZE(key) + PyBytes_GET_SIZE(value);
    PyObject *size_obj = PyLong_FromSsize_t(size);
    if (size_obj == NULL) goto out;
    entry = make_entry(key, value, essential, now, size_obj);
    Py_DECREF(size_obj);
    if (entry == NULL) goto out;
    result = push(lane, entry, size, bytes, budget, used);
    goto out;
none:
    result = Py_None;
    Py_INCREF(result);
out:
    Py_XDECREF(keys);
    Py_XDECREF(max_value);
    Py_XDECREF(next_id);
    Py_XDECREF(id);
    Py_XDECREF(value);
    Py_XDECREF(entry);
    return result;
}

static PyObject *remembered(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "remembered(lane, packet, session_key, now)");
        return NULL;
    }
    if (check_lane(args[0])) return NULL;
    return remembered_impl(args[0], args[1], args[2], args[3]);
}

/* offer(lane, entry) -> Delivery | None: Lane.offer. */
static PyObject *offer(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "offer(lane, entry)");
        return NULL;
    }
    if (check_lane(args[0])) return NULL;
    return offer_impl(args[0], args[1]);
}

/* Whether `loop` is the running event loop of this thread: 1, 0, or -1 with an error set.
 *
 * asyncio's _get_running_loop() answers that, but on Python 3.11 it asks the kernel for the
 * process id on every call (getpid(), a system call: ~6% of write()'s time here). A loop's
 * _thread_id is this thread's id exactly while its run_forever() runs (set before it
 * becomes the running loop, cleared after), and a thread runs one loop at a time, so the id
 * compare gives the same answer. After a fork the child's thread may have the parent's id,
 * so there, and for loops without a _thread_id, asyncio is asked. */
static int in_loop_thread(PyObject *loop) {
    if (!forked) {
        PyObject *tid = PyObject_GetAttr(loop, s_thread_id);
        if (tid == NULL) {
            if (!PyErr_ExceptionMatches(PyExc_AttributeError)) return -1;
            PyErr_Clear();
        } else if (tid == Py_None) {
            Py_DECREF(tid);
            return 0; /* not running */
        } else if (PyLong_CheckExact(tid)) {
            unsigned long id = PyLong_AsUnsignedLong(tid);
            Py_DECREF(tid);
            if (id == (unsigned long)-1 && PyErr_Occurred()) {
                PyErr_Clear();
            } else {
                return id == PyThread_get_thread_ident();
            }
        } else {
            Py_DECREF(tid);
        }
    }
    PyObject *running = PyObject_CallNoArgs(get_running_loop);
    if (running == NULL) return -1;
    int same = running == loop;
    Py_DECREF(running);
    return same;
}

/* runs_here(loop) -> bool: whether `loop` is this thread's running event loop (accel.py's
 * runs_here, for the Python steps of write_data that check it per call). */
static PyObject *runs_here(PyObject *module, PyObject *loop) {
    if (loop == Py_None) Py_RETURN_FALSE; /* (a writer not started has no loop) */
    int here = in_loop_thread(loop);
    if (here < 0) return NULL;
    return PyBool_FromLong(here);
}

/* forked(): called in a child process after fork (os.register_at_fork in accel.py). */
static PyObject *mark_forked(PyObject *module, PyObject *unused) {
    forked = 1;
    Py_RETURN_NONE;
}

/* write(writer, data_source, stream, session_key, packet[, any_turn]) -> Delivery | None: the
 * whole fast path of PacketWriter.write_data (writer.py) in one call, the same steps as its
 * inline Python: a running writer called from its own loop, str names of a stream already
 * written to whose topics are ready, the writer's turn not over (unless any_turn), room in the
 * queue and either Packet bytes of
 * the lane's remembered layout or a builder's packet (encoded_write). None as soon as any of
 * that does not hold: the caller then takes the Python path, which decides everything again. The Python glue around remembered() and offer()
 * (attribute loads, the lane lookup, the checks) was ~0.6 us of write_data's ~1.2 us. */
PyObject *aiowriter_write(PyObject *const *args, Py_ssize_t nargs, int *turn_over) {
    if (nargs != 5 && nargs != 6) {
        PyErr_SetString(PyExc_TypeError,
                        "write(writer, data_source, stream, session_key, packet[, any_turn])");
        return NULL;
    }
    /* any_turn: write_data_nowait's call, which never hands the loop over, so the turn does
     * not bound it (else, once a turn ended, every later call would decline). */
    int any_turn = nargs == 6 ? PyObject_IsTrue(args[5]) : 0;
    if (any_turn < 0) return NULL;
    if (!bound) {
        PyErr_SetString(PyExc_RuntimeError, "aiowriter._writing._accel: bind() was not called");
        return NULL;
    }
    PyObject *self = args[0], *session_key = args[3], *packet = args[4];
    int encoded = encoded_bound && Py_IS_TYPE(packet, E.type);
    if (!PyUnicode_CheckExact(args[1]) || !PyUnicode_CheckExact(args[2]) ||
        !PyUnicode_CheckExact(session_key) || !(encoded || PyBytes_CheckExact(packet)))
        Py_RETURN_NONE;
    /* Every `goto out` before `result` is set leaves NULL: the failed call's error is raised. */
    PyObject *result = NULL, *state = NULL, *loop = NULL, *lanes = NULL,
             *key = NULL, *lane = NULL, *clock = NULL, *now = NULL, *entry = NULL,
             *turn_ends = NULL;
    int slotted = writer_bound && Py_IS_TYPE(self, W.type);
    if ((state = front_attr(self, slotted, W.state, s_state)) == NULL) goto out;
    if (state != s_running &&
        (!PyUnicode_CheckExact(state) || PyUnicode_Compare(state, s_running) != 0))
        goto none;
    if ((loop = front_attr(self, slotted, W.loop, s_loop)) == NULL) goto out;
    int here = in_loop_thread(loop);
    if (here < 0) goto out;
    if (!here) goto none;
    if ((lanes = front_attr(self, slotted, W.lanes, s_lanes)) == NULL) goto out;
    if (!PyDict_CheckExact(lanes)) goto none;
    /* The last lookup's lane while the same dict and name objects come (see _front_lane in
     * PacketWriter.__init__, which resets it whenever _lanes changes); else the dict. */
    PyObject *cache = slotted ? SLOT(self, W.front_lane) : NULL;
    if (cache != NULL && PyTuple_CheckExact(cache) && PyTuple_GET_SIZE(cache) == 4 &&
        PyTuple_GET_ITEM(cache, 0) == lanes && PyTuple_GET_ITEM(cache, 1) == args[1] &&
        PyTuple_GET_ITEM(cache, 2) == args[2]) {
        lane = PyTuple_GET_ITEM(cache, 3);
        Py_INCREF(lane);
    } else {
        if ((key = PyTuple_Pack(2, args[1], args[2])) == NULL) goto out;
        lane = PyDict_GetItemWithError(lanes, key); /* borrowed */
        if (lane == NULL) {
            if (PyErr_Occurred()) goto out;
            goto none;
        }
        Py_INCREF(lane);
        if (slotted) {
            PyObject *remembered = PyTuple_Pack(4, lanes, args[1], args[2], lane);
            if (remembered == NULL) goto out;
            set_slot(self, W.front_lane, remembered);
        }
    }
    if (!PyObject_TypeCheck(lane, L.lane_type)) goto none;
    PyObject *ready = SLOT(lane, L.ready); /* borrowed: the lane holds it */
    if (ready == NULL || ready == Py_None) goto none;
    int done = is_done(ready);
    if (done < 0) goto out;
    if (!done) goto none;
    if ((clock = front_attr(self, slotted, W.clock, s_clock)) == NULL) goto out;
    if ((now = clock == time_monotonic ? monotonic_now() : PyObject_CallNoArgs(clock)) == NULL)
        goto out;
    if (!any_turn) {
        if ((turn_ends = front_attr(self, slotted, W.turn_ends, s_turn_ends)) == NULL) goto out;
        int in_turn = PyObject_RichCompareBool(now, turn_ends, Py_LT);
        if (in_turn < 0) goto out;
        if (!in_turn) {
            if (turn_over != NULL && slotted) *turn_over = 1;
            goto none;
        }
    }
    if (encoded) {
        result = encoded_write(self, slotted, lane, packet, session_key, now);
        goto out;
    }
    if ((entry = remembered_impl(lane, packet, session_key, now)) == NULL) goto out;
    if (entry == Py_None) goto none;
    result = offer_impl(lane, entry); /* the Delivery, None (no room) or NULL */
    goto out;
none:
    result = Py_None;
    Py_INCREF(result);
out:
    Py_XDECREF(state);
    Py_XDECREF(loop);
    Py_XDECREF(lanes);
    Py_XDECREF(key);
    Py_XDECREF(lane);
    Py_XDECREF(clock);
    Py_XDECREF(now);
    Py_XDECREF(entry);
    Py_XDECREF(turn_ends);
    return result;
}

static PyObject *write_data(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    return aiowriter_write(args, nargs, NULL);
}

/* The arguments of the *_run functions: a lane, a list, start <= stop <= its length, and the
 * list the results are appended to. */
static int run_args(PyObject *const *args, Py_ssize_t nargs, Py_ssize_t want, const char *usage,
                    Py_ssize_t *start, Py_ssize_t *stop) {
    if (nargs != want) {
        PyErr_SetString(PyExc_TypeError, usage);
        return -1;
    }
    if (check_lane(args[0])) return -1;
    PyObject *out = args[nargs - 1];
    /* offer_run's out may be None: the deliveries are not wanted (write_data_many makes them
     * when asked, from the lane's numbers). */
    int out_ok = PyList_CheckExact(out) || (want == 5 && out == Py_None);
    if (!PyList_CheckExact(args[1]) || !out_ok) {
        PyErr_SetString(PyExc_TypeError, usage);
        return -1;
    }
    *start = PyLong_AsSsize_t(args[2]);
    if (*start == -1 && PyErr_Occurred()) return -1;
    *stop = PyLong_AsSsize_t(args[3]);
    if (*stop == -1 && PyErr_Occurred()) return -1;
    if (*start < 0 || *stop < *start || *stop > PyList_GET_SIZE(args[1])) {
        PyErr_SetString(PyExc_IndexError, "start and stop must be 0 <= start <= stop <= len");
        return -1;
    }
    return 0;
}

/* remembered_run(lane, packets, start, stop, session_key, now, out) -> int: the entries of
 * packets[start:stop] appended to ``out`` while the memo knows them; the index of the first
 * it does not know, or ``stop``. */
static PyObject *remembered_run(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    Py_ssize_t i, stop;
    if (run_args(args, nargs, 7, "remembered_run(lane, packets, start, stop, session_key, now, out)",
                 &i, &stop))
        return NULL;
    PyObject *lane = args[0], *packets = args[1], *out = args[6];
    for (; i < stop && i < PyList_GET_SIZE(packets); i++) {
        PyObject *packet = PyList_GET_ITEM(packets, i);
        Py_INCREF(packet);
        PyObject *entry = remembered_impl(lane, packet, args[4], args[5]);
        Py_DECREF(packet);
        if (entry == NULL) return NULL;
        if (entry == Py_None) {
            Py_DECREF(entry);
            break;
        }
        int failed = PyList_Append(out, entry);
        Py_DECREF(entry);
        if (failed) return NULL;
    }
    return PyLong_FromSsize_t(i);
}

/* Undo push_run's record of essential copies: the numbers of the first ``count`` entries from
 * ``start`` (numbered from ``pushed``) that have one leave ``essential_map``, so nothing of a run
 * that could not be queued stays behind. The failure's error is kept through it (the undo's own
 * errors are dropped). */
static void forget_essentials(PyObject *essential_map, PyObject *entries, Py_ssize_t start,
                              Py_ssize_t count, Py_ssize_t pushed) {
    PyObject *type, *value, *traceback;
    PyErr_Fetch(&type, &value, &traceback);
    for (Py_ssize_t k = 0; k < count; k++) {
        if (entry_items(PyList_GET_ITEM(entries, start + k))[2] != Py_True) continue;
        PyObject *back = PyLong_FromSsize_t(pushed + k);
        if (back == NULL || PyDict_DelItem(essential_map, back) < 0) PyErr_Clear();
        Py_XDECREF(back);
    }
    PyErr_Restore(type, value, traceback);
}

/* The bulk part of offer_run when no delivery is kept: as many of entries[start:stop] as
 * Lane.offer would take one by one, queued together (one deque extend, the lane's and the
 * budget's numbers set once, one Delivery: the lane's last), so the result is the per-entry
 * loop's. It stops, for that loop to decide, at anything else: an entry that is not a plain
 * lane entry, no room, a full ledger (Python starts the next), an unusual slot. The index of
 * the first entry it left, or -1 with an error set (then nothing was queued).
 *
 * Why: per entry, offer() looked the lane's slots up, asked the drain task done(), made four
 * ints and a Delivery, and called the deque's append by name: ~0.15 us of a 3x3 packet's
 * ~2 us in write_data_many (perf, 16 streams), where this is a few loads and stores. */
static Py_ssize_t push_run(PyObject *lane, PyObject *entries, Py_ssize_t start, Py_ssize_t stop) {
    PyObject *putters = SLOT(lane, L.putters), *woken = SLOT(lane, L.woken),
             *queue = SLOT(lane, L.entries), *limits = SLOT(lane, L.limits),
             *budget = SLOT(lane, L.budget), *task = SLOT(lane, L.task),
             *ledgers = SLOT(lane, L.ledgers);
    if (start >= stop || putters == NULL || woken != Py_None || queue == NULL ||
        limits == NULL || budget == NULL || task == NULL || task == Py_None ||
        ledgers == NULL || !PyObject_TypeCheck(budget, L.budget_type))
        return start;
    Py_ssize_t waiting = PyObject_Length(putters);
    if (waiting < 0) return -1;
    if (waiting) return start;
    Py_ssize_t pushed = LANE_COUNTERS(lane)->pushed, bytes = LANE_COUNTERS(lane)->bytes,
               used = BUDGET_COUNTERS(budget)->used, limit = BUDGET_COUNTERS(budget)->limit;
    if (pushed < 0 || bytes < 0 || used < 0 || limit < 0) return start;
    Py_ssize_t n = PyObject_Length(queue);
    if (n < 0) return -1;
    Py_ssize_t maxp, maxb;
    {
        PyObject *mp = limit_attr(limits, W.max_packets, s_max_packets);
        if (mp == NULL) return -1;
        maxp = PyLong_AsSsize_t(mp);
        Py_DECREF(mp);
        if (maxp == -1 && PyErr_Occurred()) return -1;
        PyObject *mb = limit_attr(limits, W.max_bytes, s_max_bytes);
        if (mb == NULL) return -1;
        maxb = PyLong_AsSsize_t(mb);
        Py_DECREF(mb);
        if (maxb == -1 && PyErr_Occurred()) return -1;
    }
    int done = is_done(task);
    if (done < 0) return -1;
    if (done) return start;
    PyObject *ledger = PySequence_GetItem(ledgers, -1);
    if (ledger == NULL) return -1;
    Py_ssize_t first = PyObject_TypeCheck(ledger, L.ledger_type) ? slot_ssize(ledger, L.first)
                                                                  : -1;
    PyObject *essential_map = first >= 0 ? SLOT(ledger, L.essential) : NULL;
    if (first < 0 || essential_map == NULL || !PyDict_CheckExact(essential_map)) {
        Py_DECREF(ledger);
        return start;
    }
    /* What fits, decided as offer() would packet by packet (room only grows as it fills). */
    Py_ssize_t i = start;
    PyObject *last_size = NULL;
    for (; i < stop && i < PyList_GET_SIZE(entries); i++) {
        PyObject *entry = PyList_GET_ITEM(entries, i);
        PyObject **items = entry_items(entry);
        if (items == NULL || (PyTuple_CheckExact(entry) && PyTuple_GET_SIZE(entry) != 5)) break;
        PyObject *size_obj = items[4];
        Py_ssize_t size = PyLong_CheckExact(size_obj) ? PyLong_AsSsize_t(size_obj) : -1;
        if (size < 0) {
            PyErr_Clear();
            break;
        }
        if (n >= maxp || (n && bytes + size > maxb) || (used + size > limit && used != 0))
            break;
        if (pushed + (i - start) - first >= L.span) break; /* a new ledger: Python's push */
        n++;
        bytes += size;
        used += size;
        last_size = size_obj;
    }
    Py_ssize_t count = i - start;
    if (count == 0) {
        Py_DECREF(ledger);
        return start;
    }
    /* The essential copies' numbers first: if one cannot be recorded, nothing is queued. */
    for (Py_ssize_t k = 0; k < count; k++) {
        PyObject **items = entry_items(PyList_GET_ITEM(entries, start + k));
        if (items[2] != Py_True) continue;
        PyObject *seq = PyLong_FromSsize_t(pushed + k);
        int failed = seq == NULL || PyDict_SetItem(essential_map, seq, items[4]) < 0;
        Py_XDECREF(seq);
        if (failed) {
            forget_essentials(essential_map, entries, start, k, pushed);
            Py_DECREF(ledger);
            return -1;
        }
    }
    PyObject *run = PyList_GetSlice(entries, start, i);
    PyObject *seq_obj = PyLong_FromSsize_t(pushed + count - 1);
    PyObject *delivery = L.delivery_type->tp_alloc(L.delivery_type, 0);
    PyObject *extended = NULL;
    if (run != NULL && seq_obj != NULL && delivery != NULL)
        extended = PyObject_CallMethodOneArg(queue, s_extend, run);
    Py_XDECREF(run);
    if (extended == NULL) {
        forget_essentials(essential_map, entries, start, count, pushed);
        if (!PyErr_Occurred()) PyErr_NoMemory();
        Py_DECREF(ledger);
        Py_XDECREF(seq_obj);
        Py_XDECREF(delivery);
        return -1;
    }
    Py_DECREF(extended);
    LANE_COUNTERS(lane)->pushed = pushed + count;
    LANE_COUNTERS(lane)->bytes = bytes;
    BUDGET_COUNTERS(budget)->used = used;
    Py_INCREF(last_size);
    set_slot(delivery, L.d_ledger, ledger); /* takes the reference GetItem gave */
    set_slot(delivery, L.d_seq, seq_obj);
    set_slot(delivery, L.d_size, last_size);
    set_slot(lane, L.last, delivery);
    if (wake_drainer(lane, bytes) < 0) return -1; /* queued: the error says why */
    return i;
}

/* offer_run(lane, entries, start, stop, out) -> int: entries[start:stop] offered in turn, their
 * deliveries appended to ``out`` (a list, or None: not kept); the index of the first the lane
 * did not take, or ``stop``. */
static PyObject *offer_run(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    Py_ssize_t i, stop;
    if (run_args(args, nargs, 5, "offer_run(lane, entries, start, stop, out)", &i, &stop))
        return NULL;
    PyObject *lane = args[0], *entries = args[1], *out = args[4];
    while (i < stop && i < PyList_GET_SIZE(entries)) {
        if (out == Py_None) {
            /* In bulk while it can; one entry on its own where it stopped (a new ledger, no
             * room: offer() decides), then in bulk again. */
            i = push_run(lane, entries, i, stop);
            if (i < 0) return NULL;
            if (i >= stop || i >= PyList_GET_SIZE(entries)) break;
        }
        PyObject *entry = PyList_GET_ITEM(entries, i);
        Py_INCREF(entry);
        PyObject *delivery = offer_impl(lane, entry);
        Py_DECREF(entry);
        if (delivery == NULL) return NULL;
        if (delivery == Py_None) {
            Py_DECREF(delivery);
            break;
        }
        int failed = out == Py_None ? 0 : PyList_Append(out, delivery);
        Py_DECREF(delivery);
        if (failed) return NULL;
        i++;
    }
    return PyLong_FromSsize_t(i);
}

/* frame(append, entries, headers) -> (count, size): ``append(i, None, key, value, headers)`` (a
 * record batch builder's) for the queued entries in turn until it returns None (the batch is
 * full); how many it took and their SIZE total. The drain's per-packet loop (drain.py), which
 * in Python cost ~0.3 us of a 3x3 packet: ~0.1 us here, the builder's own work. */
static PyObject *frame(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "frame(append, entries, headers)");
        return NULL;
    }
    PyObject *it = PyObject_GetIter(args[1]);
    if (it == NULL) return NULL;
    Py_ssize_t count = 0, size = 0;
    PyObject *entry;
    while ((entry = PyIter_Next(it)) != NULL) {
        PyObject **items = entry_items(entry);
        if (items == NULL) {
            Py_DECREF(entry);
            PyErr_SetString(PyExc_TypeError, "frame: a queue entry is not a lane entry");
            goto fail;
        }
        PyObject *index = PyLong_FromSsize_t(count);
        if (index == NULL) {
            Py_DECREF(entry);
            goto fail;
        }
        PyObject *call[5] = {index, Py_None, items[0], items[1], args[2]};
        PyObject *result = PyObject_Vectorcall(args[0], call, 5, NULL);
        Py_DECREF(index);
        if (result == NULL) {
            Py_DECREF(entry);
            goto fail;
        }
        int full = result == Py_None;
        Py_DECREF(result);
        if (full) {
            Py_DECREF(entry);
            break;
        }
        Py_ssize_t n = PyLong_AsSsize_t(items[4]);
        Py_DECREF(entry);
        if (n == -1 && PyErr_Occurred()) goto fail;
        size += n;
        count++;
    }
    if (PyErr_Occurred()) goto fail;
    Py_DECREF(it);
    return Py_BuildValue("(nn)", count, size);
fail:
    Py_DECREF(it);
    return NULL;
}

/* Kafka's records v2 varints are zigzag-encoded: `v` as the unsigned value written. */
static inline unsigned long long zigzag(long long v) {
    return ((unsigned long long)v << 1) ^ (unsigned long long)(v >> 63);
}

/* Kafka's zigzag varint of `v` at `out`; its length. */
static inline Py_ssize_t put_varint(unsigned char *out, long long v) {
    unsigned long long z = zigzag(v);
    Py_ssize_t n = 0;
    while (z >= 0x80) {
        out[n++] = (unsigned char)(z | 0x80);
        z >>= 7;
    }
    out[n++] = (unsigned char)z;
    return n;
}

static inline Py_ssize_t varint_len(long long v) { return varint_size(zigzag(v)); }

/* The body of record `index` (attributes, timestamp delta 0, offset delta, key, value, no
 * headers): its length, without the length varint before it. */
static inline Py_ssize_t body_len(Py_ssize_t index, Py_ssize_t key, Py_ssize_t value) {
    return 1 + 1 + varint_len(index) + varint_len(key) + key + varint_len(value) + value + 1;
}

#define BATCH_HEADER 61 /* records v2 batch header: base offset .. record count */

/* records(entries, batch_size) -> (bytearray, count, size): the records v2 section of the
 * next batch of a lane's queue, after BATCH_HEADER zero bytes for the header, as aiokafka's
 * DefaultRecordBatchBuilder.append writes them for (offset i, one timestamp, key, value, no
 * headers) in turn until the next would not fit in batch_size (the first always does):
 * the same bytes, in one buffer, with no call per record. `count` entries taken, `size` their
 * SIZE total. compression.finish_batch adds the header (and compression). */
static PyObject *records(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "records(entries, batch_size)");
        return NULL;
    }
    Py_ssize_t batch_size = PyLong_AsSsize_t(args[1]);
    if (batch_size == -1 && PyErr_Occurred()) return NULL;
    /* First pass: how many fit, and how many bytes they take. */
    PyObject *it = PyObject_GetIter(args[0]);
    if (it == NULL) return NULL;
    Py_ssize_t count = 0, size = 0, total = BATCH_HEADER;
    PyObject *entry;
    while ((entry = PyIter_Next(it)) != NULL) {
        PyObject **items = entry_items(entry);
        PyObject *key = items ? items[0] : NULL, *value = items ? items[1] : NULL;
        if (key == NULL || !PyBytes_CheckExact(key) || !PyBytes_CheckExact(value)) {
            Py_DECREF(entry);
            Py_DECREF(it);
            PyErr_SetString(PyExc_TypeError, "records: a queue entry is not a lane entry");
            return NULL;
        }
        Py_ssize_t body = body_len(count, PyBytes_GET_SIZE(key), PyBytes_GET_SIZE(value));
        Py_ssize_t need = varint_len(body) + body;
        if (count && total + need > batch_size) {
            Py_DECREF(entry);
            break;
        }
        Py_ssize_t n = PyLong_AsSsize_t(items[4]);
        Py_DECREF(entry);
        if (n == -1 && PyErr_Occurred()) {
            Py_DECREF(it);
            return NULL;
        }
        size += n;
        total += need;
        count++;
    }
    Py_DECREF(it);
    if (PyErr_Occurred()) return NULL;
    PyObject *buffer = PyByteArray_FromStringAndSize(NULL, total);
    if (buffer == NULL) return NULL;
    unsigned char *out = (unsigned char *)PyByteArray_AS_STRING(buffer);
    memset(out, 0, BATCH_HEADER);
    Py_ssize_t pos = BATCH_HEADER;
    /* Second pass: write them (nothing ran in between: the queue is as it was). */
    if ((it = PyObject_GetIter(args[0])) == NULL) goto fail;
    for (Py_ssize_t i = 0; i < count; i++) {
        if ((entry = PyIter_Next(it)) == NULL) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_RuntimeError, "records: the queue changed while framed");
            Py_DECREF(it);
            goto fail;
        }
        PyObject **items = entry_items(entry); /* the first pass checked it */
        PyObject *key = items[0], *value = items[1];
        Py_ssize_t k = PyBytes_GET_SIZE(key), v = PyBytes_GET_SIZE(value);
        pos += put_varint(out + pos, body_len(i, k, v));
        out[pos++] = 0; /* attributes */
        out[pos++] = 0; /* timestamp delta: one timestamp for the batch */
        pos += put_varint(out + pos, i);
        pos += put_varint(out + pos, k);
        memcpy(out + pos, PyBytes_AS_STRING(key), (size_t)k);
        pos += k;
        pos += put_varint(out + pos, v);
        memcpy(out + pos, PyBytes_AS_STRING(value), (size_t)v);
        pos += v;
        out[pos++] = 0; /* no headers */
        Py_DECREF(entry);
    }
    Py_DECREF(it);
    if (pos != total) {
        PyErr_SetString(PyExc_RuntimeError, "records: framed size mismatch");
        goto fail;
    }
    return Py_BuildValue("(Nnn)", buffer, count, size);
fail:
    Py_DECREF(buffer);
    return NULL;
}

/* queued_times(entries) -> list[float]: when the entries (a list) were queued, sorted: each
 * one's AT, as flights.python_queued_times. Per acknowledged batch, for the latency histogram;
 * in Python the loop read every entry by index, which for QueuedEntry is the generic
 * subscript (not the interpreter's specialised one for tuples): ~0.1 us a packet. */
static PyObject *queued_times(PyObject *module, PyObject *entries) {
    if (!PyList_CheckExact(entries)) {
        PyErr_SetString(PyExc_TypeError, "queued_times(entries): a list of queue entries");
        return NULL;
    }
    Py_ssize_t n = PyList_GET_SIZE(entries);
    PyObject *times = PyList_New(n);
    if (times == NULL) return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject **items = entry_items(PyList_GET_ITEM(entries, i));
        if (items == NULL) {
            Py_DECREF(times);
            PyErr_SetString(PyExc_TypeError, "queued_times: a queue entry is not a lane entry");
            return NULL;
        }
        Py_INCREF(items[3]);
        PyList_SET_ITEM(times, i, items[3]);
    }
    if (PyList_Sort(times) < 0) {
        Py_DECREF(times);
        return NULL;
    }
    return times;
}

/* sizes(entries, start, stop) -> bytes: the SIZE of entries[start:stop] (lane entries) as
 * native 64-bit ints, the machine words of write_data_many's Deliveries array ("q"), which
 * takes them with one frombytes(): a comprehension indexed each entry and the array's extend()
 * parsed each int (~0.08 us a packet of ~0.2). OverflowError for a size beyond 64 bits. */
static PyObject *sizes(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3 || !PyList_CheckExact(args[0])) {
        PyErr_SetString(PyExc_TypeError, "sizes(entries, start, stop): entries a list");
        return NULL;
    }
    PyObject *entries = args[0];
    Py_ssize_t start = PyLong_AsSsize_t(args[1]);
    if (start == -1 && PyErr_Occurred()) return NULL;
    Py_ssize_t stop = PyLong_AsSsize_t(args[2]);
    if (stop == -1 && PyErr_Occurred()) return NULL;
    if (start < 0 || stop < start || stop > PyList_GET_SIZE(entries)) {
        PyErr_SetString(PyExc_IndexError, "start and stop must be 0 <= start <= stop <= len");
        return NULL;
    }
    PyObject *out = PyBytes_FromStringAndSize(NULL, (stop - start) * (Py_ssize_t)sizeof(long long));
    if (out == NULL) return NULL;
    long long *words = (long long *)PyBytes_AS_STRING(out);
    for (Py_ssize_t i = start; i < stop; i++) {
        PyObject **items = entry_items(PyList_GET_ITEM(entries, i));
        if (items == NULL || !PyLong_Check(items[4])) {
            Py_DECREF(out);
            PyErr_SetString(PyExc_TypeError, "sizes: a queue entry is not a lane entry");
            return NULL;
        }
        long long n = PyLong_AsLongLong(items[4]);
        if (n == -1 && PyErr_Occurred()) {
            Py_DECREF(out);
            return NULL;
        }
        words[i - start] = n;
    }
    return out;
}

static PyMethodDef methods[] = {
    {"write", (PyCFunction)(void (*)(void))write_data, METH_FASTCALL,
     "write(writer, data_source, stream, session_key, packet[, any_turn]) -> Delivery | None."},
    {"sizes", (PyCFunction)(void (*)(void))sizes, METH_FASTCALL,
     "sizes(entries, start, stop) -> bytes: the sizes of entries[start:stop], packed."},
    {"queued_times", queued_times, METH_O,
     "queued_times(entries) -> list[float]: their enqueue times, sorted."},
    {"records", (PyCFunction)(void (*)(void))records, METH_FASTCALL,
     "records(entries, batch_size) -> (bytearray, count, size)."},
    {"frame", (PyCFunction)(void (*)(void))frame, METH_FASTCALL,
     "frame(append, entries, headers) -> (count, size)."},
    {"runs_here", runs_here, METH_O,
     "runs_here(loop): whether loop is this thread's running event loop (no getpid())."},
    {"forked", mark_forked, METH_NOARGS,
     "forked(): the process is a fork's child; ask asyncio which loop runs (in_loop_thread)."},
    {"bind_writer", bind_writer, METH_VARARGS,
     "bind_writer(PacketWriter, QueueLimits): learn where write() finds what it reads."},
    {"bind_encoded", bind_encoded, METH_VARARGS,
     "bind_encoded(EncodedPacket, type_fields, session_fields, envelope): see encoded_write."},
    {"bind", bind, METH_VARARGS,
     "bind(Lane, Budget, Ledger, Delivery, span): learn where their slots are."},
    {"remembered", (PyCFunction)(void (*)(void))remembered, METH_FASTCALL,
     "remembered(lane, packet, session_key, now) -> Entry | None (Lane.remembered)."},
    {"offer", (PyCFunction)(void (*)(void))offer, METH_FASTCALL,
     "offer(lane, entry) -> Delivery | None (Lane.offer)."},
    {"remembered_run", (PyCFunction)(void (*)(void))remembered_run, METH_FASTCALL,
     "remembered_run(lane, packets, start, stop, session_key, now, out) -> int."},
    {"offer_run", (PyCFunction)(void (*)(void))offer_run, METH_FASTCALL,
     "offer_run(lane, entries, start, stop, out) -> int."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_accel",
    "The accepting fast path of PacketWriter.write_data in C (see lanes.py).", -1, methods,
    NULL, NULL, NULL, NULL,
};

/* module.name = type: 0, or -1 with an error set. */
static int add_type(PyObject *module, const char *name, PyTypeObject *type) {
    Py_INCREF(type);
    if (PyModule_AddObject(module, name, (PyObject *)type) < 0) {
        Py_DECREF(type);
        return -1;
    }
    return 0;
}

PyMODINIT_FUNC PyInit__accel(void) {
#define INTERN(var, text)                                                                   \
    if ((var = PyUnicode_InternFromString(text)) == NULL) return NULL;
    INTERN(s_append, "append")
    INTERN(s_extend, "extend")
    INTERN(s_done, "done")
    INTERN(s_set_result, "set_result")
    INTERN(s_remembered, "remembered")
    INTERN(s_offer, "offer")
    INTERN(s_push, "push")
    INTERN(s_max_packets, "max_packets_per_stream")
    INTERN(s_max_bytes, "max_bytes_per_stream")
    INTERN(s_state, "_state")
    INTERN(s_running, "running")
    INTERN(s_loop, "_loop")
    INTERN(s_lanes, "_lanes")
    INTERN(s_clock, "_clock")
    INTERN(s_turn_ends, "_turn_ends")
    INTERN(s_keys, "_keys")
    INTERN(s_thread_id, "_thread_id")
    INTERN(s_max_value, "_max_value")
    INTERN(s_next_id, "_next_id")
#undef INTERN
    PyObject *asyncio = PyImport_ImportModule("asyncio");
    if (asyncio == NULL) return NULL;
    get_running_loop = PyObject_GetAttrString(asyncio, "_get_running_loop");
    Py_DECREF(asyncio);
    if (get_running_loop == NULL) return NULL;
    PyObject *c_asyncio = PyImport_ImportModule("_asyncio");
    if (c_asyncio == NULL) {
        PyErr_Clear(); /* no C futures here: done() is called by name */
    } else {
        future_type = (PyTypeObject *)PyObject_GetAttrString(c_asyncio, "Future");
        task_type = (PyTypeObject *)PyObject_GetAttrString(c_asyncio, "Task");
        Py_DECREF(c_asyncio);
        if (future_type == NULL || task_type == NULL || !PyType_Check(future_type) ||
            !PyType_Check(task_type))
            return NULL;
        if ((future_done = PyObject_GetAttr((PyObject *)future_type, s_done)) == NULL ||
            (task_done = PyObject_GetAttr((PyObject *)task_type, s_done)) == NULL)
            return NULL;
        if (!Py_IS_TYPE(future_done, &PyMethodDescr_Type) ||
            !Py_IS_TYPE(task_done, &PyMethodDescr_Type)) {
            Py_CLEAR(future_done); /* not C methods: by name */
            Py_CLEAR(task_done);
        }
    }
    PyObject *time_module = PyImport_ImportModule("time");
    if (time_module == NULL) return NULL;
    time_monotonic = PyObject_GetAttrString(time_module, "monotonic");
    Py_DECREF(time_module);
    if (time_monotonic == NULL) return NULL;
    PyObject *collections = PyImport_ImportModule("collections");
    if (collections == NULL) return NULL;
    deque_type = (PyTypeObject *)PyObject_GetAttrString(collections, "deque");
    Py_DECREF(collections);
    if (deque_type == NULL || !PyType_Check(deque_type)) return NULL;
    if ((deque_append = PyObject_GetAttr((PyObject *)deque_type, s_append)) == NULL) return NULL;
    if (!Py_IS_TYPE(deque_append, &PyMethodDescr_Type)) Py_CLEAR(deque_append);
    if (PyType_Ready(&QueuedEntryType) < 0 || PyType_Ready(&LaneCountersType) < 0 ||
        PyType_Ready(&BudgetCountersType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    if (add_type(m, "QueuedEntry", &QueuedEntryType) < 0 ||
        add_type(m, "LaneCounters", &LaneCountersType) < 0 ||
        add_type(m, "BudgetCounters", &BudgetCountersType) < 0 || write_call_init(m) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}

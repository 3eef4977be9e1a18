/* zstd compression of record batches in a thread that never takes the GIL.
 *
 * Why not a Python thread (offload.Worker): cramjam releases the GIL while it compresses, but
 * the thread must take the GIL back to return, and the event-loop thread, busy writing,
 * keeps it for up to the switch interval (5 ms) before it lets go. Measured (3x3 packets, 16
 * streams, flat out): results queued for the GIL, one thread's batches took 5 ms each at
 * least, and packets waited 600 ms at p99 in full queues; with a 0.2 ms switch interval the
 * same code ran 1.3-2x faster. A library may not change the process's switch interval.
 *
 * So this thread compresses with libzstd directly (loaded at run time: no headers or link
 * step at build time; the newest of the system's libzstd.so.1 and the copies other packages
 * bundle, see load_zstd_from; no native thread where there is none) and tells
 * the loop through a pipe it watches (loop.add_reader): a byte when the first result of a
 * burst is ready. The loop, holding the GIL, collects every finished job at once.
 *
 * A job borrows its batch's buffer through the buffer protocol (the bytearray cannot be
 * resized meanwhile: a resize raises BufferError) and hands back a new bytearray: the buffer's
 * first `offset` bytes (the batch header, finished on the loop) and the compressed rest.
 * Everything touching Python objects (submit, collect, close) runs with the GIL held; the
 * thread touches only the job's memory, its own zstd context and the queue's mutex.
 *
 * After fork() the child has the object but not its thread, and the mutex may have been held
 * at the fork: nothing in the child waits for or signals the thread (see `owned`).
 */
#define _GNU_SOURCE /* pthread_setname_np */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#if defined(__unix__) || defined(__APPLE__)
#define HAVE_ZSTD_THREAD 1
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>
#else
#define HAVE_ZSTD_THREAD 0
#endif

#if HAVE_ZSTD_THREAD

/* The part of libzstd's stable API used here (zstd.h, v1.x). */
typedef struct ZSTD_CCtx_s ZSTD_CCtx;
static size_t (*zstd_compress_bound)(size_t);
static unsigned (*zstd_is_error)(size_t);
static const char *(*zstd_error_name)(size_t);
static ZSTD_CCtx *(*zstd_create_cctx)(void);
static size_t (*zstd_free_cctx)(ZSTD_CCtx *);
static size_t (*zstd_compress_cctx)(ZSTD_CCtx *, void *, size_t, const void *, size_t, int);
static unsigned (*zstd_version_number)(void);
static int zstd_loaded = 0; /* 1 loaded, -1 not there */
/* Where the functions above came from: a preferred library's path, or the system's name. */
static char zstd_origin[4096];

typedef struct {
    size_t (*compress_bound)(size_t);
    unsigned (*is_error)(size_t);
    const char *(*error_name)(size_t);
    ZSTD_CCtx *(*create_cctx)(void);
    size_t (*free_cctx)(ZSTD_CCtx *);
    size_t (*compress_cctx)(ZSTD_CCtx *, void *, size_t, const void *, size_t, int);
    unsigned (*version_number)(void);
} ZstdApi;

/* The API from the library at `name`, or 0 where it cannot be opened or lacks a function
 * (an extension module that hides zstd's symbols, say). The handle stays open: the
 * function pointers may be used for the life of the process. */
static int open_zstd(const char *name, ZstdApi *api) {
    void *lib = dlopen(name, RTLD_NOW | RTLD_LOCAL);
    if (lib == NULL) return 0;
    *(void **)&api->compress_bound = dlsym(lib, "ZSTD_compressBound");
    *(void **)&api->is_error = dlsym(lib, "ZSTD_isError");
    *(void **)&api->error_name = dlsym(lib, "ZSTD_getErrorName");
    *(void **)&api->create_cctx = dlsym(lib, "ZSTD_createCCtx");
    *(void **)&api->free_cctx = dlsym(lib, "ZSTD_freeCCtx");
    *(void **)&api->compress_cctx = dlsym(lib, "ZSTD_compressCCtx");
    *(void **)&api->version_number = dlsym(lib, "ZSTD_versionNumber");
    if (api->compress_bound && api->is_error && api->error_name && api->create_cctx &&
        api->free_cctx && api->compress_cctx && api->version_number)
        return 1;
    dlclose(lib);
    return 0;
}

/* Loads libzstd once: the newest of the `preferred` paths (libraries bundled with other
 * packages, offload.py names them) and the system's libzstd. Why the newest: the speed of
 * level 3 differs a lot between releases (measured here, same batches: Debian's 1.5.4 took
 * 1.3-1.6x the time of 1.5.7). Later calls return the first answer: the thread may be using
 * the functions already. */
static int load_zstd_from(PyObject *preferred) {
    if (zstd_loaded) return zstd_loaded > 0;
    ZstdApi best = {0}, api;
    unsigned best_version = 0;
    Py_ssize_t n = preferred == NULL ? 0 : PySequence_Size(preferred);
    if (n < 0) {
        PyErr_Clear();
        n = 0;
    }
    const char *system[] = {"libzstd.so.1", "libzstd.1.dylib", "libzstd.dylib", "libzstd.so"};
    const Py_ssize_t n_system = (Py_ssize_t)(sizeof system / sizeof *system);
    int system_found = 0;
    for (Py_ssize_t i = 0; i < n + n_system; i++) {
        const char *name;
        PyObject *item = NULL, *bytes = NULL;
        if (i < n) {
            item = PySequence_GetItem(preferred, i);
            if (item == NULL || !PyUnicode_FSConverter(item, &bytes)) {
                Py_XDECREF(item);
                PyErr_Clear();
                continue;
            }
            name = PyBytes_AS_STRING(bytes);
        } else {
            if (system_found) break; /* the first system name that opens is the system's */
            name = system[i - n];
        }
        if (open_zstd(name, &api)) {
            unsigned version = api.version_number();
            if (version > best_version) {
                best = api;
                best_version = version;
                snprintf(zstd_origin, sizeof zstd_origin, "%s", name);
            }
            if (i >= n) system_found = 1;
        }
        Py_XDECREF(bytes);
        Py_XDECREF(item);
    }
    if (best_version == 0) {
        zstd_loaded = -1;
        return 0;
    }
    zstd_compress_bound = best.compress_bound;
    zstd_is_error = best.is_error;
    zstd_error_name = best.error_name;
    zstd_create_cctx = best.create_cctx;
    zstd_free_cctx = best.free_cctx;
    zstd_compress_cctx = best.compress_cctx;
    zstd_version_number = best.version_number;
    zstd_loaded = 1;
    return 1;
}

static int load_zstd(void) { return load_zstd_from(NULL); }

/* The thread's name, as ps and top show it (at most 15 characters on Linux). */
#define THREAD_NAME "aiowriter-zstd"

typedef struct Job {
    struct Job *next;
    PyObject *token;  /* the caller's (a future): touched only with the GIL */
    PyObject *owner;  /* the buffer's object, held while the thread reads it */
    Py_buffer view;
    Py_ssize_t offset; /* bytes before the part compressed (copied as they are) */
    char *out;         /* malloc'd by the thread: the compressed part */
    size_t out_len;    /* or a zstd error code when `error` */
    int error;         /* 1 zstd error, 2 no memory */
} Job;

typedef struct {
    PyObject_HEAD
    pthread_mutex_t lock;
    pthread_cond_t wake;
    pthread_t thread;
    Job *todo, *todo_tail, *done, *done_tail;
    int level;
    int stop;      /* under lock: the thread ends when it sees it */
    int notified;  /* under lock: a byte is in the pipe, or about to be */
    int running;   /* a thread was started and not joined */
    int read_fd, write_fd;
    pid_t owner_pid; /* after fork() the child owns no thread */
    Py_ssize_t pending; /* submitted, not collected (GIL) */
    Py_ssize_t completed;
    Py_ssize_t finished; /* under lock: jobs the thread finished, collected or not */
} Compressor;

static void *run(void *arg) {
    Compressor *self = (Compressor *)arg;
#if defined(__linux__)
    pthread_setname_np(pthread_self(), THREAD_NAME); /* in ps, top, /proc/<pid>/task */
#elif defined(__APPLE__)
    pthread_setname_np(THREAD_NAME);
#endif
    ZSTD_CCtx *cctx = zstd_create_cctx();
    pthread_mutex_lock(&self->lock);
    for (;;) {
        while (self->todo == NULL && !self->stop) pthread_cond_wait(&self->wake, &self->lock);
        if (self->stop) break;
        Job *job = self->todo;
        self->todo = job->next;
        if (self->todo == NULL) self->todo_tail = NULL;
        pthread_mutex_unlock(&self->lock);

        const char *src = (const char *)job->view.buf + job->offset;
        size_t n = (size_t)(job->view.len - job->offset);
        size_t bound = zstd_compress_bound(n);
        job->out = cctx != NULL ? malloc(bound ? bound : 1) : NULL;
        if (job->out == NULL) {
            job->error = 2;
        } else {
            size_t r = zstd_compress_cctx(cctx, job->out, bound, src, n, self->level);
            if (zstd_is_error(r)) {
                job->error = 1;
                free(job->out);
                job->out = NULL;
            }
            job->out_len = r;
        }

        pthread_mutex_lock(&self->lock);
        self->finished++;
        job->next = NULL;
        if (self->done_tail != NULL)
            self->done_tail->next = job;
        else
            self->done = job;
        self->done_tail = job;
        if (!self->notified) {
            self->notified = 1;
            char byte = 1;
            /* Non-blocking; a full pipe already holds a byte the loop will read. */
            ssize_t w;
            do {
                w = write(self->write_fd, &byte, 1);
            } while (w < 0 && errno == EINTR);
        }
    }
    pthread_mutex_unlock(&self->lock);
    if (cctx != NULL) zstd_free_cctx(cctx);
    return NULL;
}

static PyTypeObject CompressorType;

static PyObject *compressor_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"level", NULL};
    int level = 3;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|i:Compressor", kwlist, &level)) return NULL;
    if (!load_zstd()) {
        PyErr_SetString(PyExc_OSError, "no libzstd here (libzstd.so.1 or a bundled copy)");
        return NULL;
    }
    Compressor *self = (Compressor *)type->tp_alloc(type, 0);
    if (self == NULL) return NULL;
    self->level = level;
    self->read_fd = self->write_fd = -1;
    self->owner_pid = getpid();
    pthread_mutex_init(&self->lock, NULL);
    pthread_cond_init(&self->wake, NULL);
    int fds[2];
    if (pipe(fds) < 0) {
        Py_DECREF(self);
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    self->read_fd = fds[0];
    self->write_fd = fds[1];
    for (int i = 0; i < 2; i++) {
        int flags = fcntl(fds[i], F_GETFL);
        if (flags < 0 || fcntl(fds[i], F_SETFL, flags | O_NONBLOCK) < 0 ||
            fcntl(fds[i], F_SETFD, FD_CLOEXEC) < 0) {
            PyErr_SetFromErrno(PyExc_OSError);
            Py_DECREF(self);
            return NULL;
        }
    }
    /* Signals go to the threads that run Python, never to this one. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int err = pthread_create(&self->thread, NULL, run, self);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (err != 0) {
        errno = err;
        PyErr_SetFromErrno(PyExc_OSError);
        Py_DECREF(self);
        return NULL;
    }
    self->running = 1;
    return (PyObject *)self;
}

static void free_job(Job *job) {
    /* With the GIL. */
    PyBuffer_Release(&job->view);
    Py_XDECREF(job->owner);
    Py_XDECREF(job->token);
    free(job->out);
    PyMem_Free(job);
}

/* Stop and join the thread (this process's only); the jobs it had not finished, unfinished
 * ones first, with their results dropped. Returns the tokens of every job not collected. */
static PyObject *stop_thread(Compressor *self) {
    PyObject *tokens = PyList_New(0);
    if (tokens == NULL) return NULL;
    if (!self->running) return tokens;
    self->running = 0;
    Job *lists[2] = {NULL, NULL};
    if (self->owner_pid == getpid()) {
        pthread_mutex_lock(&self->lock);
        self->stop = 1;
        pthread_cond_signal(&self->wake);
        pthread_mutex_unlock(&self->lock);
        Py_BEGIN_ALLOW_THREADS
        pthread_join(self->thread, NULL); /* at most one batch's compression away */
        Py_END_ALLOW_THREADS
        lists[0] = self->todo;
        lists[1] = self->done;
    }
    /* In a fork's child the thread is not there and the lists may be mid-update: leak them. */
    self->todo = self->todo_tail = self->done = self->done_tail = NULL;
    for (int i = 0; i < 2; i++) {
        for (Job *job = lists[i], *next; job != NULL; job = next) {
            next = job->next;
            if (PyList_Append(tokens, job->token) < 0) PyErr_Clear();
            free_job(job);
            self->pending--;
        }
    }
    return tokens;
}

static void close_fds(Compressor *self) {
    if (self->read_fd >= 0) close(self->read_fd);
    if (self->write_fd >= 0) close(self->write_fd);
    self->read_fd = self->write_fd = -1;
}

static void compressor_dealloc(Compressor *self) {
    /* Possibly called with an exception set (collected while one propagates): keep it. */
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyObject *tokens = stop_thread(self);
    Py_XDECREF(tokens);
    if (PyErr_Occurred()) PyErr_Clear();
    PyErr_Restore(type, value, tb);
    close_fds(self);
    if (self->owner_pid == getpid()) {
        pthread_mutex_destroy(&self->lock);
        pthread_cond_destroy(&self->wake);
    }
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *compressor_submit(Compressor *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "submit(buffer, offset, token)");
        return NULL;
    }
    if (!self->running || self->owner_pid != getpid()) {
        PyErr_SetString(PyExc_RuntimeError, "this compressor was closed");
        return NULL;
    }
    Py_ssize_t offset = PyLong_AsSsize_t(args[1]);
    if (offset == -1 && PyErr_Occurred()) return NULL;
    Job *job = PyMem_Calloc(1, sizeof *job);
    if (job == NULL) return PyErr_NoMemory();
    if (PyObject_GetBuffer(args[0], &job->view, PyBUF_SIMPLE) < 0) {
        PyMem_Free(job);
        return NULL;
    }
    if (offset < 0 || offset > job->view.len) {
        PyErr_Format(PyExc_ValueError, "offset %zd outside a buffer of %zd bytes", offset,
                     job->view.len);
        PyBuffer_Release(&job->view);
        PyMem_Free(job);
        return NULL;
    }
    job->offset = offset;
    job->owner = Py_NewRef(args[0]);
    job->token = Py_NewRef(args[2]);
    pthread_mutex_lock(&self->lock);
    if (self->todo_tail != NULL)
        self->todo_tail->next = job;
    else
        self->todo = job;
    self->todo_tail = job;
    pthread_cond_signal(&self->wake);
    pthread_mutex_unlock(&self->lock);
    self->pending++;
    Py_RETURN_NONE;
}

/* collect() -> [(token, bytearray | exception)]: every job finished since the last call. */
static PyObject *compressor_collect(Compressor *self, PyObject *unused) {
    if (!self->running || self->owner_pid != getpid()) return PyList_New(0);
    char sink[64];
    while (read(self->read_fd, sink, sizeof sink) > 0) {
    }
    pthread_mutex_lock(&self->lock);
    Job *job = self->done;
    self->done = self->done_tail = NULL;
    self->notified = 0;
    pthread_mutex_unlock(&self->lock);
    PyObject *out = PyList_New(0);
    for (Job *next; job != NULL; job = next) {
        next = job->next;
        self->pending--;
        self->completed++;
        PyObject *result = NULL;
        if (out != NULL) {
            if (job->error == 2) {
                result = PyErr_NoMemory();
            } else if (job->error == 1) {
                PyErr_Format(PyExc_RuntimeError, "zstd compression failed: %s",
                             zstd_error_name(job->out_len));
            } else {
                result = PyByteArray_FromStringAndSize(NULL, job->offset + job->out_len);
                if (result != NULL) {
                    char *dst = PyByteArray_AS_STRING(result);
                    memcpy(dst, job->view.buf, job->offset);
                    memcpy(dst + job->offset, job->out, job->out_len);
                }
            }
            if (result == NULL) {
                /* The job's own failure, handed to its waiter. */
                PyObject *type, *value, *tb;
                PyErr_Fetch(&type, &value, &tb);
                PyErr_NormalizeException(&type, &value, &tb);
                if (tb != NULL) PyException_SetTraceback(value, tb);
                Py_XDECREF(type);
                Py_XDECREF(tb);
                result = value;
            }
            PyObject *pair = result != NULL ? PyTuple_Pack(2, job->token, result) : NULL;
            Py_XDECREF(result);
            if (pair == NULL || PyList_Append(out, pair) < 0) Py_CLEAR(out);
            Py_XDECREF(pair);
        }
        free_job(job);
    }
    return out;
}

static PyObject *compressor_close(Compressor *self, PyObject *unused) {
    PyObject *tokens = stop_thread(self);
    close_fds(self);
    return tokens;
}

static PyObject *compressor_fileno(Compressor *self, PyObject *unused) {
    if (self->read_fd < 0) {
        PyErr_SetString(PyExc_ValueError, "this compressor was closed");
        return NULL;
    }
    return PyLong_FromLong(self->read_fd);
}

static PyObject *get_pending(Compressor *self, void *unused) {
    return PyLong_FromSsize_t(self->pending);
}

static PyObject *get_completed(Compressor *self, void *unused) {
    return PyLong_FromSsize_t(self->completed);
}

/* Jobs submitted that the thread has not finished yet (queued, or being compressed): 0 once
 * it is idle, even before the loop collects what it finished. */
static PyObject *get_working(Compressor *self, void *unused) {
    if (!self->running || self->owner_pid != getpid()) return PyLong_FromLong(0);
    pthread_mutex_lock(&self->lock);
    Py_ssize_t finished = self->finished;
    pthread_mutex_unlock(&self->lock);
    return PyLong_FromSsize_t(self->pending + self->completed - finished);
}

static PyObject *get_closed(Compressor *self, void *unused) {
    return PyBool_FromLong(!self->running || self->owner_pid != getpid());
}

static PyObject *get_level(Compressor *self, void *unused) { return PyLong_FromLong(self->level); }

static PyObject *compressor_repr(Compressor *self) {
    return PyUnicode_FromFormat("<Compressor level=%d pending=%zd completed=%zd%s>", self->level,
                                self->pending, self->completed,
                                self->running ? "" : " closed");
}

static PyMethodDef compressor_methods[] = {
    {"submit", (PyCFunction)(void (*)(void))compressor_submit, METH_FASTCALL,
     "submit(buffer, offset, token): compress buffer[offset:] in the thread."},
    {"collect", (PyCFunction)compressor_collect, METH_NOARGS,
     "collect() -> [(token, bytearray or exception)]: the jobs finished since the last call; "
     "the bytearray is buffer[:offset] followed by the compressed rest."},
    {"close", (PyCFunction)compressor_close, METH_NOARGS,
     "close() -> tokens of the jobs not collected: stop and join the thread (idempotent)."},
    {"fileno", (PyCFunction)compressor_fileno, METH_NOARGS,
     "fileno(): readable when jobs have finished (for loop.add_reader)."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef compressor_getset[] = {
    {"level", (getter)get_level, NULL, "the zstd compression level", NULL},
    {"pending", (getter)get_pending, NULL, "jobs submitted and not collected", NULL},
    {"completed", (getter)get_completed, NULL, "jobs collected", NULL},
    {"working", (getter)get_working, NULL,
     "jobs submitted and not finished yet (queued or being compressed)", NULL},
    {"closed", (getter)get_closed, NULL, "whether close() ran (or this is a fork's child)",
     NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject CompressorType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "aiowriter._kafka._zstd_thread.Compressor",
    .tp_basicsize = sizeof(Compressor),
    .tp_dealloc = (destructor)compressor_dealloc,
    .tp_repr = (reprfunc)compressor_repr,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Compressor(level=3): zstd in a thread of its own that never takes the GIL.",
    .tp_methods = compressor_methods,
    .tp_getset = compressor_getset,
    .tp_new = compressor_new,
};
#endif

static PyObject *available(PyObject *module, PyObject *args) {
    PyObject *preferred = NULL;
    if (!PyArg_ParseTuple(args, "|O:available", &preferred)) return NULL;
#if HAVE_ZSTD_THREAD
    return PyBool_FromLong(load_zstd_from(preferred));
#else
    Py_RETURN_FALSE;
#endif
}

static PyObject *zstd_library(PyObject *module, PyObject *unused) {
#if HAVE_ZSTD_THREAD
    if (load_zstd()) return PyUnicode_DecodeFSDefault(zstd_origin);
#endif
    Py_RETURN_NONE;
}

static PyObject *zstd_version(PyObject *module, PyObject *unused) {
#if HAVE_ZSTD_THREAD
    if (load_zstd()) return PyLong_FromUnsignedLong(zstd_version_number());
#endif
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"available", available, METH_VARARGS,
     "available(preferred=()): whether libzstd could be loaded. The first call loads the "
     "newest of the libraries at the `preferred` paths and the system's libzstd."},
    {"zstd_library", zstd_library, METH_NOARGS,
     "The path or name the loaded libzstd was opened from, or None."},
    {"zstd_version", zstd_version, METH_NOARGS,
     "The loaded libzstd's ZSTD_versionNumber(), or None."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_zstd_thread",
    "zstd compression in a thread that never takes the GIL.", 0, methods,
};

PyMODINIT_FUNC PyInit__zstd_thread(void) {
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
#if HAVE_ZSTD_THREAD
    if (PyType_Ready(&CompressorType) < 0 ||
        PyModule_AddObjectRef(m, "Compressor", (PyObject *)&CompressorType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
#endif
    return m;
}

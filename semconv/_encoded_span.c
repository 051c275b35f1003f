/* Reading an encoded OTLP Span in C: semconv/encoded_span.py's _read_span, for the form SDKs write.
 *
 * Compiled by `spanfuse build-mapper` beside the mypyc build. The Python readers
 * (encoded_span.py, keyvalue.py) are the specification, the fallback without a build, and read
 * what this leaves to them; tests compare the two on the same bytes. In Python an attribute
 * cost ~1,900 instructions, most of them making a bytes object for its key (to find the key's
 * interned str) and another for its value (to decode it), and a span ~40,000. Here a key is
 * found from the encoded bytes in place and a value decoded from them directly.
 *
 * read_span(data, read_key_value) -> tuple | None answers what _read_span answers on the same
 * bytes: the span's fields as (trace_id, span_id, parent_span_id, name, kind, start, end,
 * attributes, status_code, status_message), status_code -1 without a status; or None, where
 * _read_span gives None or raises IndexError or ValueError (any other form, or damage: the
 * caller decodes the span with protobuf). An attribute whose value is or holds bytes is read by
 * the Python `read_key_value` passed in.
 *
 * Every read is bounds-checked against the whole buffer, as Python's indexing is: a varint may
 * run past its field (the Python reader then sees a length that does not fit).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define TAG_KEY 0x0A    /* KeyValue.key, length-delimited */
#define TAG_VALUE 0x12  /* KeyValue.value (AnyValue), length-delimited */
#define TAG_STRING 0x0A /* AnyValue.string_value */
#define TAG_BOOL 0x10   /* AnyValue.bool_value, varint */
#define TAG_INT 0x18    /* AnyValue.int_value, varint */
#define TAG_FLOAT 0x21  /* AnyValue.double_value, fixed 64 bits */
#define TAG_ARRAY 0x2A  /* AnyValue.array_value, length-delimited */
#define TAG_MAP 0x32    /* AnyValue.kvlist_value, length-delimited */
#define TAG_ITEM 0x0A   /* ArrayValue.values / KeyValueList.values, length-delimited */
#define MAX_DEPTH 32    /* deeper values are left to protobuf (which bounds nesting itself) */

/* Interned key strs by their encoded bytes: open addressing, a few probes, emptied when half
 * full, so memory and the time of a lookup stay bounded whatever keys clients send. */
#define KEY_SLOTS 4096
#define MAX_KEY_BYTES 256 /* longer keys are decoded each time, as keyvalue.py does */
#define MAX_PROBES 8

typedef struct {
    uint64_t hash;
    Py_ssize_t size;
    const char *utf8; /* the key's UTF-8, owned by `text` */
    PyObject *text;   /* an interned str (a reference held), NULL when the slot is free */
} KeySlot;

static KeySlot key_slots[KEY_SLOTS];
static Py_ssize_t keys_held;


static uint64_t
hash_bytes(const unsigned char *bytes, Py_ssize_t size)
{
    uint64_t hash = 0x9E3779B97F4A7C15ULL ^ (uint64_t)size;
    uint64_t word;
    while (size >= 8) {
        memcpy(&word, bytes, 8);
        hash = (hash ^ word) * 0xFF51AFD7ED558CCDULL;
        hash ^= hash >> 32;
        bytes += 8;
        size -= 8;
    }
    word = 0;
    memcpy(&word, bytes, (size_t)size);
    hash = (hash ^ word) * 0xC4CEB9FE1A85EC53ULL;
    return hash ^ (hash >> 29);
}

static void
forget_keys(void)
{
    for (Py_ssize_t i = 0; i < KEY_SLOTS; i++) {
        Py_CLEAR(key_slots[i].text);
    }
    keys_held = 0;
}

/* A new reference to the str of the UTF-8 key `bytes[0:size]`, or NULL with an exception. */
static PyObject *
key_text(const unsigned char *bytes, Py_ssize_t size)
{
    if (size > MAX_KEY_BYTES) {
        return PyUnicode_DecodeUTF8((const char *)bytes, size, NULL);
    }
    uint64_t hash = hash_bytes(bytes, size);
    KeySlot *free_slot = NULL;
    for (int probe = 0; probe < MAX_PROBES; probe++) {
        KeySlot *slot = &key_slots[(hash + (uint64_t)probe) & (KEY_SLOTS - 1)];
        if (slot->text == NULL) {
            free_slot = slot;
            break;
        }
        if (slot->hash == hash && slot->size == size && memcmp(slot->utf8, bytes, (size_t)size) == 0) {
            Py_INCREF(slot->text);
            return slot->text;
        }
    }
    PyObject *text = PyUnicode_DecodeUTF8((const char *)bytes, size, NULL);
    if (text == NULL) {
        return NULL;
    }
    PyUnicode_InternInPlace(&text);
    if (free_slot == NULL) { /* every probed slot taken by other keys: not kept */
        return text;
    }
    Py_ssize_t utf8_size;
    const char *utf8 = PyUnicode_AsUTF8AndSize(text, &utf8_size);
    if (utf8 == NULL || utf8_size != size) {
        PyErr_Clear(); /* cannot be (it was decoded from these bytes); then just not kept */
        return text;
    }
    if (keys_held >= KEY_SLOTS / 2) {
        forget_keys();
        return text; /* the table starts over; this key is kept when it comes again */
    }
    free_slot->hash = hash;
    free_slot->size = size;
    free_slot->utf8 = utf8;
    Py_INCREF(text);
    free_slot->text = text;
    keys_held++;
    return text;
}


/* What a reading step gives: done; not the plain form or damaged (the span is None); an
 * attribute value left to Python; or a Python exception set (MemoryError: raised). */
typedef enum { DONE = 0, OTHER = 1, DEFERRED = 2, FAILED = -1 } Outcome;

#define SPAN_TRACE_ID 1
#define SPAN_SPAN_ID 2
#define SPAN_TRACE_STATE 3
#define SPAN_PARENT_SPAN_ID 4
#define SPAN_NAME 5
#define SPAN_KIND 6
#define SPAN_START 7
#define SPAN_END 8
#define SPAN_ATTRIBUTES 9
#define SPAN_DROPPED_ATTRIBUTES 10
#define SPAN_DROPPED_EVENTS 12
#define SPAN_DROPPED_LINKS 14
#define SPAN_STATUS 15
#define SPAN_FLAGS 16
#define STATUS_MESSAGE_TAG (2 << 3 | 2)
#define STATUS_CODE_TAG (3 << 3 | 0)
#define WIRE_VARINT 0
#define WIRE_FIXED64 1
#define WIRE_LENGTH 2
#define WIRE_FIXED32 5
#define MAX_KIND 5        /* SPAN_KIND_CONSUMER */
#define MAX_STATUS_CODE 2 /* STATUS_CODE_ERROR */

/* The varint at *pos (cut to 64 bits, as protobuf reads it); *pos moves past it. OTHER when it
 * runs past the buffer or is longer than ten bytes (Python: IndexError, ValueError). */
static Outcome
varint(const unsigned char *data, Py_ssize_t size, Py_ssize_t *pos, uint64_t *value)
{
    uint64_t result = 0;
    Py_ssize_t at = *pos;
    for (int shift = 0; shift < 70; shift += 7) {
        if (at >= size) {
            return OTHER;
        }
        unsigned char byte = data[at++];
        result |= (uint64_t)(byte & 0x7F) << shift;
        if (byte < 0x80) {
            *pos = at;
            *value = result;
            return DONE;
        }
    }
    return OTHER;
}

/* The position after a length-delimited field of `length` bytes from `start`, if it ends by
 * `end`; else -1. */
static Py_ssize_t
field_end(Py_ssize_t start, uint64_t length, Py_ssize_t end)
{
    return start <= end && length <= (uint64_t)(end - start) ? start + (Py_ssize_t)length : -1;
}

/* *text = the UTF-8 of bytes[0:size] as a str (new reference). Invalid UTF-8 is OTHER
 * (Python: UnicodeDecodeError, a ValueError). */
static Outcome
decode(const unsigned char *bytes, Py_ssize_t size, PyObject **text)
{
    *text = PyUnicode_DecodeUTF8((const char *)bytes, size, NULL);
    if (*text != NULL) {
        return DONE;
    }
    if (PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) {
        PyErr_Clear();
        return OTHER;
    }
    return FAILED;
}

static Outcome key_value(const unsigned char *data, Py_ssize_t size, Py_ssize_t pos, Py_ssize_t end, int depth,
                         PyObject *into);
static Outcome items(const unsigned char *data, Py_ssize_t size, Py_ssize_t pos, Py_ssize_t end, int depth,
                     unsigned char tag, PyObject **value);

/* *value = the AnyValue in data[pos:end] (new reference), for the members read here; `depth`
 * lists and maps enclose it. */
static Outcome
any_value(const unsigned char *data, Py_ssize_t size, Py_ssize_t pos, Py_ssize_t end, int depth, PyObject **value)
{
    if (pos == end) {
        *value = Py_NewRef(Py_None);
        return DONE;
    }
    unsigned char tag = data[pos];
    uint64_t number;
    Py_ssize_t after = pos + 1;
    if (tag == TAG_INT || tag == TAG_BOOL) {
        if (varint(data, size, &after, &number) != DONE || after != end) {
            return OTHER;
        }
        if (tag == TAG_BOOL) {
            *value = PyBool_FromLong(number != 0);
        }
        else {
            *value = PyLong_FromLongLong((long long)(int64_t)number); /* int64 in two's complement */
        }
        return *value == NULL ? FAILED : DONE;
    }
    if (tag == TAG_FLOAT) {
        if (pos + 9 != end) {
            return OTHER;
        }
        uint64_t bits = 0;
        for (int i = 8; i >= 1; i--) { /* little-endian on the wire, whatever the machine's order */
            bits = bits << 8 | data[pos + i];
        }
        double real;
        memcpy(&real, &bits, sizeof real);
        *value = PyFloat_FromDouble(real);
        return *value == NULL ? FAILED : DONE;
    }
    if (varint(data, size, &after, &number) != DONE || field_end(after, number, end) != end) {
        return OTHER; /* the other members are length-delimited, and fill the value */
    }
    if (tag == TAG_STRING) {
        return decode(data + after, end - after, value);
    }
    if (tag == TAG_ARRAY || tag == TAG_MAP) {
        return depth >= MAX_DEPTH ? OTHER : items(data, size, after, end, depth, tag, value);
    }
    return DEFERRED; /* bytes (base64 text), and any other tag, which keyvalue.py refuses */
}

/* *value = the ArrayValue (a list) or KeyValueList (a dict) in data[pos:end]. */
static Outcome
items(const unsigned char *data, Py_ssize_t size, Py_ssize_t pos, Py_ssize_t end, int depth, unsigned char tag,
      PyObject **value)
{
    PyObject *container = tag == TAG_ARRAY ? PyList_New(0) : PyDict_New();
    Outcome outcome = container == NULL ? FAILED : DONE;
    while (outcome == DONE && pos < end) {
        uint64_t length;
        Py_ssize_t start = pos + 1;
        if (data[pos] != TAG_ITEM || varint(data, size, &start, &length) != DONE
            || (pos = field_end(start, length, end)) < 0) {
            outcome = OTHER;
        }
        else if (tag == TAG_MAP) {
            outcome = key_value(data, size, start, pos, depth + 1, container);
        }
        else {
            PyObject *item = NULL;
            outcome = any_value(data, size, start, pos, depth + 1, &item);
            if (outcome == DONE && PyList_Append(container, item) < 0) {
                outcome = FAILED;
            }
            Py_XDECREF(item);
        }
    }
    if (outcome == DONE) {
        *value = container;
    }
    else {
        Py_XDECREF(container);
    }
    return outcome;
}

/* The KeyValue in data[pos:end] put into `into` (keyvalue.py's _key_value). */
static Outcome
key_value(const unsigned char *data, Py_ssize_t size, Py_ssize_t pos, Py_ssize_t end, int depth, PyObject *into)
{
    uint64_t length;
    Py_ssize_t start = pos + 1;
    if (pos == end || data[pos] != TAG_KEY || varint(data, size, &start, &length) != DONE) {
        return OTHER;
    }
    Py_ssize_t stop = field_end(start, length, end);
    if (stop < 0) {
        return OTHER;
    }
    PyObject *key = key_text(data + start, stop - start);
    if (key == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) {
            return FAILED;
        }
        PyErr_Clear();
        return OTHER;
    }
    PyObject *value = NULL;
    Outcome outcome;
    if (stop == end) { /* no value: an empty AnyValue */
        value = Py_NewRef(Py_None);
        outcome = DONE;
    }
    else {
        Py_ssize_t value_start = stop + 1;
        if (data[stop] != TAG_VALUE || varint(data, size, &value_start, &length) != DONE
            || field_end(value_start, length, end) != end) {
            outcome = OTHER;
        }
        else {
            outcome = any_value(data, size, value_start, end, depth, &value);
        }
    }
    if (outcome == DONE && PyDict_SetItem(into, key, value) < 0) {
        outcome = FAILED;
    }
    Py_DECREF(key);
    Py_XDECREF(value);
    return outcome;
}

/* An attribute read by the Python reader (`read_key_value(data, pos, end, into) -> bool`). */
static Outcome
key_value_in_python(PyObject *reader, PyObject *data, Py_ssize_t pos, Py_ssize_t end, PyObject *into)
{
    PyObject *start = PyLong_FromSsize_t(pos);
    PyObject *stop = PyLong_FromSsize_t(end);
    PyObject *read = NULL;
    if (start != NULL && stop != NULL) {
        PyObject *args[] = {data, start, stop, into};
        read = PyObject_Vectorcall(reader, args, 4, NULL);
    }
    Py_XDECREF(start);
    Py_XDECREF(stop);
    if (read == NULL) { /* read_span answers None where _read_span's reader raises these */
        if (PyErr_ExceptionMatches(PyExc_IndexError) || PyErr_ExceptionMatches(PyExc_ValueError)) {
            PyErr_Clear();
            return OTHER;
        }
        return FAILED;
    }
    int truth = PyObject_IsTrue(read);
    Py_DECREF(read);
    return truth < 0 ? FAILED : truth ? DONE : OTHER;
}

/* Span.status in data[pos:end]: *code and *message (a new reference) as _read_status reads them. */
static Outcome
read_status(const unsigned char *data, Py_ssize_t size, Py_ssize_t pos, Py_ssize_t end, uint64_t *code,
            PyObject **message)
{
    int seen = 0;
    *code = 0;
    *message = NULL;
    while (pos < end) {
        uint64_t tag, length;
        if (varint(data, size, &pos, &tag) != DONE) {
            return OTHER;
        }
        if (tag == STATUS_MESSAGE_TAG && !(seen & 1)) {
            seen |= 1;
            Py_ssize_t start = pos;
            if (varint(data, size, &start, &length) != DONE || (pos = field_end(start, length, end)) < 0) {
                return OTHER;
            }
            Outcome outcome = decode(data + start, pos - start, message);
            if (outcome != DONE) {
                return outcome;
            }
        }
        else if (tag == STATUS_CODE_TAG && !(seen & 2)) {
            seen |= 2;
            if (varint(data, size, &pos, code) != DONE || *code > MAX_STATUS_CODE) {
                return OTHER;
            }
        }
        else {
            return OTHER;
        }
    }
    if (*message == NULL) {
        *message = PyUnicode_New(0, 0);
    }
    return *message == NULL ? FAILED : DONE;
}

typedef struct {
    PyObject *ids[3]; /* trace_id, span_id, parent_span_id */
    PyObject *name;
    PyObject *attributes;
    PyObject *status_message;
} SpanParts;

static void
release(SpanParts *span)
{
    for (int i = 0; i < 3; i++) {
        Py_XDECREF(span->ids[i]);
    }
    Py_XDECREF(span->name);
    Py_XDECREF(span->attributes);
    Py_XDECREF(span->status_message);
}

static const int id_slot[] = {[SPAN_TRACE_ID] = 0, [SPAN_SPAN_ID] = 1, [SPAN_PARENT_SPAN_ID] = 2};

/* A length-delimited field of the span in data[start:stop]. */
static Outcome
span_field(PyObject *buffer, PyObject *reader, uint64_t field, Py_ssize_t start, Py_ssize_t stop,
           SpanParts *span, uint64_t *status_code)
{
    const unsigned char *data = (const unsigned char *)PyBytes_AS_STRING(buffer);
    Py_ssize_t size = PyBytes_GET_SIZE(buffer);
    PyObject *trace_state;
    Outcome outcome;
    switch (field) {
    case SPAN_ATTRIBUTES:
        outcome = key_value(data, size, start, stop, 0, span->attributes);
        return outcome == DEFERRED ? key_value_in_python(reader, buffer, start, stop, span->attributes) : outcome;
    case SPAN_TRACE_ID:
    case SPAN_SPAN_ID:
    case SPAN_PARENT_SPAN_ID:
        span->ids[id_slot[field]] = PyBytes_FromStringAndSize((const char *)data + start, stop - start);
        return span->ids[id_slot[field]] == NULL ? FAILED : DONE;
    case SPAN_NAME:
        return decode(data + start, stop - start, &span->name);
    case SPAN_TRACE_STATE: /* not mapped, but protobuf refuses invalid UTF-8 in it */
        outcome = decode(data + start, stop - start, &trace_state);
        Py_XDECREF(trace_state);
        return outcome;
    case SPAN_STATUS:
        return read_status(data, size, start, stop, status_code, &span->status_message);
    default:
        return OTHER; /* events, links, or a field of another wire type */
    }
}

static PyObject *
read_span(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 2 || !PyBytes_CheckExact(args[0])) {
        PyErr_SetString(PyExc_TypeError, "read_span(data: bytes, read_key_value)");
        return NULL;
    }
    PyObject *buffer = args[0];
    const unsigned char *data = (const unsigned char *)PyBytes_AS_STRING(buffer);
    Py_ssize_t size = PyBytes_GET_SIZE(buffer);
    SpanParts span = {{NULL, NULL, NULL}, NULL, PyDict_New(), NULL};
    uint64_t kind = 0, start_time = 0, end_time = 0, status_code = 0;
    uint32_t seen = 0; /* bit per singular field: a field met twice goes to protobuf */
    Py_ssize_t pos = 0;
    Outcome outcome = span.attributes == NULL ? FAILED : DONE;
    while (outcome == DONE && pos < size) {
        uint64_t tag, value;
        if (varint(data, size, &pos, &tag) != DONE) {
            outcome = OTHER;
            break;
        }
        uint64_t field = tag >> 3;
        unsigned wire = (unsigned)(tag & 7);
        if (field != SPAN_ATTRIBUTES) {
            if (field > SPAN_FLAGS || seen & (1u << field)) {
                outcome = OTHER;
                break;
            }
            seen |= 1u << field;
        }
        if (wire == WIRE_LENGTH) {
            Py_ssize_t start = pos;
            if (varint(data, size, &start, &value) != DONE || (pos = field_end(start, value, size)) < 0) {
                outcome = OTHER;
                break;
            }
            outcome = span_field(buffer, args[1], field, start, pos, &span, &status_code);
        }
        else if (wire == WIRE_VARINT) {
            if (varint(data, size, &pos, &value) != DONE) {
                outcome = OTHER;
            }
            else if (field == SPAN_KIND && value <= MAX_KIND) {
                kind = value;
            }
            else if (field != SPAN_DROPPED_ATTRIBUTES && field != SPAN_DROPPED_EVENTS
                     && field != SPAN_DROPPED_LINKS) {
                outcome = OTHER;
            }
        }
        else if (wire == WIRE_FIXED64 && (field == SPAN_START || field == SPAN_END)) {
            if (pos + 8 > size) {
                outcome = OTHER;
                break;
            }
            value = 0;
            for (int i = 7; i >= 0; i--) {
                value = value << 8 | data[pos + i];
            }
            pos += 8;
            *(field == SPAN_START ? &start_time : &end_time) = value;
        }
        else if (wire == WIRE_FIXED32 && field == SPAN_FLAGS) {
            pos += 4;
            if (pos > size) {
                outcome = OTHER;
            }
        }
        else {
            outcome = OTHER;
        }
    }
    PyObject *fields = NULL;
    if (outcome == DONE) {
        for (int i = 0; i < 3; i++) {
            if (span.ids[i] == NULL) {
                span.ids[i] = PyBytes_FromStringAndSize(NULL, 0);
            }
        }
        if (span.name == NULL) {
            span.name = PyUnicode_New(0, 0);
        }
        int has_status = span.status_message != NULL;
        fields = Py_BuildValue("(OOOOKKKOLO)", span.ids[0], span.ids[1], span.ids[2], span.name,
                               (unsigned long long)kind, (unsigned long long)start_time,
                               (unsigned long long)end_time, span.attributes,
                               has_status ? (long long)status_code : -1LL,
                               has_status ? span.status_message : Py_None);
    }
    else if (outcome == OTHER) {
        fields = Py_NewRef(Py_None);
    }
    release(&span);
    return fields;
}

static PyMethodDef methods[] = {
    {"read_span", (PyCFunction)(void (*)(void))read_span, METH_FASTCALL,
     "read_span(data, read_key_value) -> tuple | None: semconv.encoded_span._read_span in C."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "semconv._encoded_span",
    .m_doc = "Encoded OTLP spans read in C (see semconv/encoded_span.py).",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC
PyInit__encoded_span(void)
{
    return PyModule_Create(&module_def);
}

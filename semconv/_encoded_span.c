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
 * span_problems(spans) walks spans the same way making nothing, for the collector's check of a
 * request before it is acknowledged: for each span, what is wrong with its ids (0 nothing; only
 * the others are listed), or -1 (protobuf must decide) where read_span answers None, except
 * that events and links are checked too (a worker reads those spans through protobuf).
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
#define TAG_BYTES 0x3A  /* AnyValue.bytes_value, length-delimited */
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
    const char *utf8 = PyUnicode_AsUTF8AndSize(text, NULL); /* the same bytes, kept by `text` */
    if (utf8 == NULL) { /* out of memory for them: not kept */
        PyErr_Clear();
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
#define SPAN_EVENTS 11
#define SPAN_DROPPED_EVENTS 12
#define SPAN_LINKS 13
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

/* Whether bytes[0:size] is UTF-8 as Python's strict decoder (and protobuf) accept it: the
 * well-formed sequences of Unicode's table 3-7 (no overlong forms, surrogates or values past
 * U+10FFFF). Checks without decoding, for span_problem. */
static int
utf8_valid(const unsigned char *bytes, Py_ssize_t size)
{
    Py_ssize_t i = 0;
    while (i < size) {
        uint64_t word;
        while (i + 8 <= size) { /* ASCII runs a word at a time */
            memcpy(&word, bytes + i, 8);
            if (word & 0x8080808080808080ULL) {
                break;
            }
            i += 8;
        }
        if (i >= size) {
            break;
        }
        unsigned char lead = bytes[i];
        if (lead < 0x80) {
            i++;
            continue;
        }
        int length = lead >= 0xC2 && lead <= 0xDF ? 2 : lead >= 0xE0 && lead <= 0xEF ? 3 : lead >= 0xF0 && lead <= 0xF4 ? 4 : 0;
        if (length == 0 || i + length > size) {
            return 0;
        }
        /* The second byte's range depends on the lead; the others are plain continuation bytes. */
        unsigned char low = lead == 0xE0 ? 0xA0 : lead == 0xF0 ? 0x90 : 0x80;
        unsigned char high = lead == 0xED ? 0x9F : lead == 0xF4 ? 0x8F : 0xBF;
        if (bytes[i + 1] < low || bytes[i + 1] > high) {
            return 0;
        }
        for (int k = 2; k < length; k++) {
            if ((bytes[i + k] & 0xC0) != 0x80) {
                return 0;
            }
        }
        i += length;
    }
    return 1;
}

/* *text = the UTF-8 of bytes[0:size] as a str (new reference); with `text` NULL only checked.
 * Invalid UTF-8 is OTHER (Python: UnicodeDecodeError, a ValueError). */
static Outcome
decode(const unsigned char *bytes, Py_ssize_t size, PyObject **text)
{
    if (text == NULL) {
        return utf8_valid(bytes, size) ? DONE : OTHER;
    }
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
 * lists and maps enclose it. With `value` NULL the value is only checked, bytes included. */
static Outcome
any_value(const unsigned char *data, Py_ssize_t size, Py_ssize_t pos, Py_ssize_t end, int depth, PyObject **value)
{
    if (pos == end) {
        if (value != NULL) {
            *value = Py_NewRef(Py_None);
        }
        return DONE;
    }
    unsigned char tag = data[pos];
    uint64_t number;
    Py_ssize_t after = pos + 1;
    if (tag == TAG_INT || tag == TAG_BOOL) {
        if (varint(data, size, &after, &number) != DONE || after != end) {
            return OTHER;
        }
        if (value == NULL) {
            return DONE;
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
        if (value == NULL) {
            return DONE;
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
    if (tag == TAG_BYTES && value == NULL) {
        return DONE;
    }
    /* Bytes to read (base64 text, left to Python); any other tag is refused, by keyvalue.py too. */
    return tag == TAG_BYTES ? DEFERRED : OTHER;
}

/* *value = the ArrayValue (a list) or KeyValueList (a dict) in data[pos:end]; with `value` NULL
 * only checked. */
static Outcome
items(const unsigned char *data, Py_ssize_t size, Py_ssize_t pos, Py_ssize_t end, int depth, unsigned char tag,
      PyObject **value)
{
    PyObject *container = value == NULL ? NULL : tag == TAG_ARRAY ? PyList_New(0) : PyDict_New();
    Outcome outcome = value != NULL && container == NULL ? FAILED : DONE;
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
            outcome = any_value(data, size, start, pos, depth + 1, value == NULL ? NULL : &item);
            if (outcome == DONE && item != NULL && PyList_Append(container, item) < 0) {
                outcome = FAILED;
            }
            Py_XDECREF(item);
        }
    }
    if (outcome == DONE && value != NULL) {
        *value = container;
    }
    else {
        Py_XDECREF(container);
    }
    return outcome;
}

/* The KeyValue in data[pos:end] put into `into` (keyvalue.py's _key_value); with `into` NULL
 * only checked. */
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
    PyObject *key = NULL;
    if (into == NULL) {
        if (!utf8_valid(data + start, stop - start)) {
            return OTHER;
        }
    }
    else if ((key = key_text(data + start, stop - start)) == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) {
            return FAILED;
        }
        PyErr_Clear();
        return OTHER;
    }
    PyObject *value = NULL;
    Outcome outcome;
    if (stop == end) { /* no value: an empty AnyValue */
        value = into == NULL ? NULL : Py_NewRef(Py_None);
        outcome = DONE;
    }
    else {
        Py_ssize_t value_start = stop + 1;
        if (data[stop] != TAG_VALUE || varint(data, size, &value_start, &length) != DONE
            || field_end(value_start, length, end) != end) {
            outcome = OTHER;
        }
        else {
            outcome = any_value(data, size, value_start, end, depth, into == NULL ? NULL : &value);
        }
    }
    if (outcome == DONE && into != NULL && PyDict_SetItem(into, key, value) < 0) {
        outcome = FAILED;
    }
    Py_XDECREF(key);
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

/* Span.status in data[pos:end]: *code and *message (a new reference; with `message` NULL only
 * checked) as _read_status reads them. */
static Outcome
read_status(const unsigned char *data, Py_ssize_t size, Py_ssize_t pos, Py_ssize_t end, uint64_t *code,
            PyObject **message)
{
    int seen = 0;
    *code = 0;
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
    if (message != NULL && *message == NULL) {
        *message = PyUnicode_New(0, 0);
        return *message == NULL ? FAILED : DONE;
    }
    return DONE;
}

/* A Span.Event or Span.Link in data[pos:end], only checked (span_problems): each known field in
 * its own wire type, names UTF-8, attributes as key_value checks them. Anything else is OTHER,
 * for protobuf to decide; nothing passes that protobuf refuses. */
static Outcome
check_event_or_link(const unsigned char *data, Py_ssize_t pos, Py_ssize_t end, int link)
{
    const int text = link ? 3 : 2, attributes = link ? 4 : 3, dropped = link ? 5 : 4;
    while (pos < end) {
        uint64_t tag, value;
        if (varint(data, end, &pos, &tag) != DONE) { /* bounded by the message: it must not run past */
            return OTHER;
        }
        uint64_t field = tag >> 3;
        unsigned wire = (unsigned)(tag & 7);
        if (wire == WIRE_LENGTH) {
            Py_ssize_t start = pos;
            if (varint(data, end, &start, &value) != DONE || (pos = field_end(start, value, end)) < 0) {
                return OTHER;
            }
            Outcome outcome = field == (uint64_t)text ? decode(data + start, pos - start, NULL)
                              : field == (uint64_t)attributes ? key_value(data, end, start, pos, 0, NULL)
                              : link && (field == 1 || field == 2) ? DONE /* trace and span ids: any bytes */
                                                                   : OTHER;
            if (outcome != DONE) {
                return outcome;
            }
        }
        else if (wire == WIRE_VARINT && field == (uint64_t)dropped) {
            if (varint(data, end, &pos, &value) != DONE) {
                return OTHER;
            }
        }
        else if ((wire == WIRE_FIXED64 && !link && field == 1) || (wire == WIRE_FIXED32 && link && field == 6)) {
            pos += wire == WIRE_FIXED64 ? 8 : 4; /* an event's time, a link's flags */
            if (pos > end) {
                return OTHER;
            }
        }
        else {
            return OTHER;
        }
    }
    return DONE;
}

/* A span as it is read: with `build` false (span_problem) nothing is made, everything checked. */
typedef struct {
    int build;
    PyObject *reader; /* the Python read_key_value, for attributes left to it */
    Py_ssize_t id_start[3], id_size[3]; /* trace_id, span_id, parent_span_id in the buffer */
    PyObject *name;
    PyObject *attributes;
    int has_status;
    uint64_t status_code;
    PyObject *status_message;
    uint64_t kind, start_time, end_time;
} SpanParts;

static void
release(SpanParts *span)
{
    Py_XDECREF(span->name);
    Py_XDECREF(span->attributes);
    Py_XDECREF(span->status_message);
}

static const int id_slot[] = {[SPAN_TRACE_ID] = 0, [SPAN_SPAN_ID] = 1, [SPAN_PARENT_SPAN_ID] = 2};

/* A length-delimited field of the span in data[start:stop]. */
static Outcome
span_field(PyObject *buffer, uint64_t field, Py_ssize_t start, Py_ssize_t stop, SpanParts *span)
{
    const unsigned char *data = (const unsigned char *)PyBytes_AS_STRING(buffer);
    Py_ssize_t size = PyBytes_GET_SIZE(buffer);
    Outcome outcome;
    switch (field) {
    case SPAN_ATTRIBUTES:
        outcome = key_value(data, size, start, stop, 0, span->attributes);
        return outcome == DEFERRED ? key_value_in_python(span->reader, buffer, start, stop, span->attributes) : outcome;
    case SPAN_TRACE_ID:
    case SPAN_SPAN_ID:
    case SPAN_PARENT_SPAN_ID:
        span->id_start[id_slot[field]] = start;
        span->id_size[id_slot[field]] = stop - start;
        return DONE;
    case SPAN_NAME:
        return decode(data + start, stop - start, span->build ? &span->name : NULL);
    case SPAN_TRACE_STATE: /* not mapped, but protobuf refuses invalid UTF-8 in it */
        return decode(data + start, stop - start, NULL);
    case SPAN_EVENTS:
    case SPAN_LINKS: /* read by protobuf; checked here, as the collector checks most spans' */
        return span->build ? OTHER : check_event_or_link(data, start, stop, field == SPAN_LINKS);
    case SPAN_STATUS:
        span->has_status = 1;
        return read_status(data, size, start, stop, &span->status_code, span->build ? &span->status_message : NULL);
    default:
        return OTHER; /* an unknown field, or a known one in another wire type */
    }
}

/* The span in `buffer` read into `span` as _read_span reads it. */
static Outcome
walk_span(PyObject *buffer, SpanParts *span)
{
    const unsigned char *data = (const unsigned char *)PyBytes_AS_STRING(buffer);
    Py_ssize_t size = PyBytes_GET_SIZE(buffer);
    uint32_t seen = 0; /* bit per singular field: a field met twice goes to protobuf */
    Py_ssize_t pos = 0;
    Outcome outcome = DONE;
    while (outcome == DONE && pos < size) {
        uint64_t tag, value;
        if (varint(data, size, &pos, &tag) != DONE) {
            return OTHER;
        }
        uint64_t field = tag >> 3;
        unsigned wire = (unsigned)(tag & 7);
        if (field != SPAN_ATTRIBUTES && field != SPAN_EVENTS && field != SPAN_LINKS) { /* the repeated ones */
            if (field > SPAN_FLAGS || seen & (1u << field)) {
                return OTHER;
            }
            seen |= 1u << field;
        }
        if (wire == WIRE_LENGTH) {
            Py_ssize_t start = pos;
            if (varint(data, size, &start, &value) != DONE || (pos = field_end(start, value, size)) < 0) {
                return OTHER;
            }
            outcome = span_field(buffer, field, start, pos, span);
        }
        else if (wire == WIRE_VARINT) {
            if (varint(data, size, &pos, &value) != DONE) {
                return OTHER;
            }
            if (field == SPAN_KIND && value <= MAX_KIND) {
                span->kind = value;
            }
            else if (field != SPAN_DROPPED_ATTRIBUTES && field != SPAN_DROPPED_EVENTS
                     && field != SPAN_DROPPED_LINKS) {
                return OTHER;
            }
        }
        else if (wire == WIRE_FIXED64 && (field == SPAN_START || field == SPAN_END)) {
            if (pos + 8 > size) {
                return OTHER;
            }
            value = 0;
            for (int i = 7; i >= 0; i--) {
                value = value << 8 | data[pos + i];
            }
            pos += 8;
            *(field == SPAN_START ? &span->start_time : &span->end_time) = value;
        }
        else if (wire == WIRE_FIXED32 && field == SPAN_FLAGS) {
            pos += 4;
            if (pos > size) {
                return OTHER;
            }
        }
        else {
            return OTHER;
        }
    }
    return outcome;
}

static PyObject *
id_bytes(PyObject *buffer, const SpanParts *span, int slot)
{
    return PyBytes_FromStringAndSize(PyBytes_AS_STRING(buffer) + span->id_start[slot], span->id_size[slot]);
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
    SpanParts span = {.build = 1, .reader = args[1], .attributes = PyDict_New()};
    Outcome outcome = span.attributes == NULL ? FAILED : walk_span(buffer, &span);
    PyObject *fields = NULL;
    if (outcome == DONE) {
        PyObject *trace_id = id_bytes(buffer, &span, 0);
        PyObject *span_id = id_bytes(buffer, &span, 1);
        PyObject *parent_span_id = id_bytes(buffer, &span, 2);
        if (span.name == NULL) {
            span.name = PyUnicode_New(0, 0);
        }
        if (trace_id != NULL && span_id != NULL && parent_span_id != NULL && span.name != NULL) {
            fields = Py_BuildValue("(OOOOKKKOLO)", trace_id, span_id, parent_span_id, span.name,
                                   (unsigned long long)span.kind, (unsigned long long)span.start_time,
                                   (unsigned long long)span.end_time, span.attributes,
                                   span.has_status ? (long long)span.status_code : -1LL,
                                   span.has_status ? span.status_message : Py_None);
        }
        Py_XDECREF(trace_id);
        Py_XDECREF(span_id);
        Py_XDECREF(parent_span_id);
    }
    else if (outcome == OTHER) {
        fields = Py_NewRef(Py_None);
    }
    release(&span);
    return fields;
}

/* Whether `size` bytes from `start` are all zero. */
static int
all_zero(const char *start, Py_ssize_t size)
{
    for (Py_ssize_t i = 0; i < size; i++) {
        if (start[i] != 0) {
            return 0;
        }
    }
    return 1;
}

/* What is wrong with the ids of the span in `buffer`: 0 nothing, 1 the trace id, 2 the span id,
 * 3 the parent span id; -1 when read_span does not read the span; -2 with an exception set. */
static long
span_problem(PyObject *buffer)
{
    SpanParts span = {.build = 0};
    Outcome outcome = walk_span(buffer, &span);
    if (outcome != DONE) {
        return outcome == FAILED ? -2 : -1;
    }
    const char *data = PyBytes_AS_STRING(buffer);
    if (span.id_size[0] != 16 || all_zero(data + span.id_start[0], 16)) {
        return 1;
    }
    if (span.id_size[1] != 8 || all_zero(data + span.id_start[1], 8)) {
        return 2;
    }
    return span.id_size[2] != 0 && span.id_size[2] != 8 ? 3 : 0;
}

static PyObject *
span_problems(PyObject *module, PyObject *spans)
{
    (void)module;
    PyObject *found = PyList_New(0);
    PyObject *iterator = found == NULL ? NULL : PyObject_GetIter(spans);
    if (iterator == NULL) {
        Py_XDECREF(found);
        return NULL;
    }
    PyObject *span;
    Py_ssize_t index = 0;
    while ((span = PyIter_Next(iterator)) != NULL) {
        long problem = -2;
        if (!PyBytes_CheckExact(span)) {
            PyErr_SetString(PyExc_TypeError, "span_problems() takes encoded spans (bytes)");
        }
        else {
            problem = span_problem(span);
        }
        Py_DECREF(span);
        if (problem == -2) {
            break;
        }
        if (problem != 0) {
            PyObject *entry = Py_BuildValue("(nl)", index, problem);
            if (entry == NULL || PyList_Append(found, entry) < 0) {
                Py_XDECREF(entry);
                break;
            }
            Py_DECREF(entry);
        }
        index++;
    }
    Py_DECREF(iterator);
    if (PyErr_Occurred()) {
        Py_DECREF(found);
        return NULL;
    }
    return found;
}

static PyMethodDef methods[] = {
    {"read_span", (PyCFunction)(void (*)(void))read_span, METH_FASTCALL,
     "read_span(data, read_key_value) -> tuple | None: semconv.encoded_span._read_span in C."},
    {"span_problems", span_problems, METH_O,
     "span_problems(spans) -> list[tuple[int, int]]: (index, problem) of each encoded span whose\n"
     "ids are unusable (problem 1 the trace id, 2 the span id, 3 the parent span id) or that\n"
     "read_span does not read (-1: ask protobuf). Checks everything read_span reads, UTF-8\n"
     "included, and makes nothing."},
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

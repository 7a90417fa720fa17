/* The streaming `<img>`/`<base>` tokenizer of html_tokens.py, compiled.
 *
 * One pass over the page's bytes (UTF-8; a str page is read through its UTF-8 form), the
 * same states and the same output as the pure-Python `html_tokens._Scanner`: see that
 * module's docstring for the rules. The rare paths that need the full attribute decoder
 * (character references, `<font>` and `<annotation-xml>` in foreign content) call back into
 * html_tokens (`configure`). `scan` returns None where it cannot promise the same output
 * (a str with lone surrogates, non-ASCII wanted names): the caller then uses Python.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>
#include <stdint.h>

static PyObject *decode_value_fn, *font_breaks_out_fn, *html_encoding_fn;

enum {
    N_NONE, N_IMG, N_IMAGE, N_BASE, N_SCRIPT, N_PLAINTEXT, N_TEMPLATE, N_SVG, N_MATH,
    N_STYLE, N_XMP, N_IFRAME, N_NOEMBED, N_NOFRAMES, N_TEXTAREA, N_TITLE,
    N_FOREIGNOBJECT, N_DESC, N_MI, N_MO, N_MN, N_MS, N_MTEXT, N_ANNOTATION_XML, N_COUNT
};
static const char *const NAMES[N_COUNT] = {
    "", "img", "image", "base", "script", "plaintext", "template", "svg", "math",
    "style", "xmp", "iframe", "noembed", "noframes", "textarea", "title",
    "foreignobject", "desc", "mi", "mo", "mn", "ms", "mtext", "annotation-xml",
};
#define IS_START(id) ((id) >= N_IMG && (id) <= N_TITLE)
#define IS_RAWTEXT(id) ((id) >= N_STYLE && (id) <= N_TITLE)
#define IS_END(id) ((id) == N_TEMPLATE || (id) == N_TITLE || ((id) >= N_FOREIGNOBJECT))

static const char *const BREAKOUT[] = {
    "b", "big", "blockquote", "body", "br", "center", "code", "dd", "div", "dl", "dt", "em",
    "embed", "h1", "h2", "h3", "h4", "h5", "h6", "head", "hr", "i", "img", "li", "listing",
    "menu", "meta", "nobr", "ol", "p", "pre", "ruby", "s", "small", "span", "strong", "strike",
    "sub", "sup", "table", "tt", "u", "ul", "var", NULL,
};

static inline int is_ws(unsigned char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\f' || c == '\r';
}
static inline int is_alpha(unsigned char c) {
    return (unsigned char)((c | 0x20) - 'a') < 26;
}
static inline unsigned char lower(unsigned char c) {
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
}
static inline int name_char(unsigned char c) { return !is_ws(c) && c != '/' && c != '>'; }

typedef struct {
    const unsigned char *s;
    Py_ssize_t n;
} Text;

/* ASCII case-insensitive: does `word` (lower case) start at p? */
static int starts_ci(const Text *t, Py_ssize_t p, const char *word) {
    Py_ssize_t len = (Py_ssize_t)strlen(word);
    if (p + len > t->n) return 0;
    for (Py_ssize_t i = 0; i < len; i++)
        if (lower(t->s[p + i]) != (unsigned char)word[i]) return 0;
    return 1;
}

/* The id of an interesting tag name (ASCII case-insensitive), N_NONE for any other. */
static int name_id(const Text *t, Py_ssize_t a, Py_ssize_t b) {
    char buf[16];
    if (b - a > 14 || b - a < 2) return N_NONE;
    switch (lower(t->s[a])) {  /* the first letters of NAMES: most tags fail here */
    case 'a': case 'b': case 'd': case 'f': case 'i': case 'm': case 'n': case 'p': case 's':
    case 't': case 'x':
        break;
    default:
        return N_NONE;
    }
    for (Py_ssize_t i = a; i < b; i++) buf[i - a] = (char)lower(t->s[i]);
    buf[b - a] = 0;
    for (int id = 1; id < N_COUNT; id++)  /* by length: a name may hold NUL */
        if ((Py_ssize_t)strlen(NAMES[id]) == b - a && memcmp(buf, NAMES[id], b - a) == 0)
            return id;
    return N_NONE;
}

/* The end of a tag's attributes (its `>`), or n when the tag is never closed. */
static Py_ssize_t attrs_end(const Text *t, Py_ssize_t p) {
    const unsigned char *s = t->s;
    Py_ssize_t n = t->n;
    while (p < n) {
        unsigned char c = s[p];
        if (c == '>') return p;
        if (is_ws(c) || c == '/') { p++; continue; }
        p++;
        while (p < n && name_char(s[p]) && s[p] != '=') p++;
        Py_ssize_t q = p;
        while (q < n && is_ws(s[q])) q++;
        if (q < n && s[q] == '=') {
            q++;
            while (q < n && is_ws(s[q])) q++;
            if (q < n && (s[q] == '"' || s[q] == '\'')) {
                const unsigned char *e = memchr(s + q + 1, s[q], (size_t)(n - q - 1));
                p = e ? (e - s) + 1 : n;
            } else {
                while (q < n && !is_ws(s[q]) && s[q] != '>') q++;
                p = q;
            }
        }
    }
    return n;
}

/* After a `</name`: the rest of the end tag, or n. */
static Py_ssize_t end_tag_rest(const Text *t, Py_ssize_t p) {
    Py_ssize_t e = attrs_end(t, p);
    return e >= t->n ? t->n : e + 1;
}

/* After `<!--`: the end of the comment. */
static Py_ssize_t comment_end(const Text *t, Py_ssize_t p) {
    const unsigned char *s = t->s;
    Py_ssize_t n = t->n;
    if (p < n && s[p] == '>') return p + 1;
    if (p + 1 < n && s[p] == '-' && s[p + 1] == '>') return p + 2;
    while (p < n) {
        const unsigned char *d = memchr(s + p, '-', (size_t)(n - p));
        if (d == NULL) return n;
        p = d - s;
        if (p + 2 < n && s[p + 1] == '-' && s[p + 2] == '>') return p + 3;
        if (p + 3 < n && s[p + 1] == '-' && s[p + 2] == '!' && s[p + 3] == '>') return p + 4;
        p++;
    }
    return n;
}

/* A bogus comment or doctype from p: to after the next `>`, or n. */
static Py_ssize_t bogus_end(const Text *t, Py_ssize_t p) {
    if (p >= t->n) return t->n;
    const unsigned char *e = memchr(t->s + p, '>', (size_t)(t->n - p));
    return e ? (e - t->s) + 1 : t->n;
}

static Py_ssize_t next_lt(const Text *t, Py_ssize_t p) {
    if (p >= t->n) return t->n;
    const unsigned char *e = memchr(t->s + p, '<', (size_t)(t->n - p));
    return e ? e - t->s : t->n;
}

/* `</name` followed by whitespace, `/` or `>`, from p: where the `<` is, or -1. */
static Py_ssize_t find_end_tag(const Text *t, Py_ssize_t p, const char *name) {
    Py_ssize_t len = (Py_ssize_t)strlen(name);
    for (p = next_lt(t, p); p < t->n; p = next_lt(t, p + 1)) {
        if (p + 2 + len < t->n && t->s[p + 1] == '/' && starts_ci(t, p + 2, name)
            && !name_char(t->s[p + 2 + len]))
            return p;
    }
    return -1;
}

static Py_ssize_t raw_end(const Text *t, Py_ssize_t p, int id) {
    Py_ssize_t e = find_end_tag(t, p, NAMES[id]);
    return e < 0 ? t->n : end_tag_rest(t, e + 2 + (Py_ssize_t)strlen(NAMES[id]));
}

/* Script data with its escaped and double-escaped states. */
static Py_ssize_t script_end(const Text *t, Py_ssize_t p) {
    enum { DATA, ESCAPED, DOUBLE } state = DATA;
    const unsigned char *s = t->s;
    Py_ssize_t n = t->n;
    while (p < n) {
        unsigned char c = s[p];
        if (c == '<') {
            if (p + 3 < n && s[p + 1] == '!' && s[p + 2] == '-' && s[p + 3] == '-') {
                Py_ssize_t k = p + 4;
                while (k < n && s[k] == '-') k++;
                if (k < n && s[k] == '>') { state = DATA; p = k + 1; }
                else { if (state == DATA) state = ESCAPED; p += 4; }
                continue;
            }
            if (p + 8 < n && s[p + 1] == '/' && starts_ci(t, p + 2, "script")
                && !name_char(s[p + 8])) {
                if (state != DOUBLE) return end_tag_rest(t, p + 8);
                state = ESCAPED;
                p += 8;
                continue;
            }
            if (p + 7 < n && starts_ci(t, p + 1, "script") && !name_char(s[p + 7])) {
                if (state == ESCAPED) state = DOUBLE;
                p += 7;
                continue;
            }
            p++;
        } else if (c == '-') {
            if (p + 2 < n && s[p + 1] == '-' && s[p + 2] == '>') { state = DATA; p += 3; }
            else p++;
        } else if (state == DATA) {  /* "-->" changes nothing here: on to the next "<" */
            p = next_lt(t, p);
        } else {
            Py_ssize_t q = p;
            while (q < n && s[q] != '<' && s[q] != '-') q++;
            p = q;
        }
    }
    return n;
}

typedef struct {
    int closing, id;
    Py_ssize_t start, name_a, name_b, attrs_a, attrs_b, end;
} Tag;

/* HTML content (point: inside an SVG/MathML integration point): the next interesting tag
 * into *tag, 1; 0 when there is none (the page ends, or inside a tag never closed). */
static int next_html(const Text *t, Py_ssize_t p, int point, Tag *tag) {
    const unsigned char *s = t->s;
    Py_ssize_t n = t->n;
    while ((p = next_lt(t, p)) < n) {
        if (p + 1 >= n) return 0;
        unsigned char c1 = s[p + 1];
        if (c1 == '!') {
            p = (p + 3 < n && s[p + 2] == '-' && s[p + 3] == '-') ? comment_end(t, p + 4)
                                                                  : bogus_end(t, p + 2);
        } else if (c1 == '?') {
            p = bogus_end(t, p + 2);
        } else if (c1 == '/') {
            if (p + 2 >= n) return 0;
            unsigned char c2 = s[p + 2];
            if (c2 == '>') { p += 3; continue; }
            if (!is_alpha(c2)) { p = bogus_end(t, p + 2); continue; }
            Py_ssize_t a = p + 2, b = a + 1;
            while (b < n && name_char(s[b])) b++;
            Py_ssize_t e = attrs_end(t, b);
            if (e >= n) return 0;
            int id = name_id(t, a, b);
            if (id == N_TEMPLATE || (point && IS_END(id))) {
                *tag = (Tag){1, id, p, a, b, b, e, e + 1};
                return 1;
            }
            p = e + 1;
        } else if (is_alpha(c1)) {
            Py_ssize_t a = p + 1, b = a + 1;
            while (b < n && name_char(s[b])) b++;
            Py_ssize_t e = attrs_end(t, b);
            if (e >= n) return 0;
            int id = name_id(t, a, b);
            if (IS_START(id)) {
                *tag = (Tag){0, id, p, a, b, b, e, e + 1};
                return 1;
            }
            p = e + 1;
        } else {
            p++;
        }
    }
    return 0;
}

/* Foreign content: the next tag of any name (CDATA sections are text). */
static int next_foreign(const Text *t, Py_ssize_t p, Tag *tag) {
    const unsigned char *s = t->s;
    Py_ssize_t n = t->n;
    while ((p = next_lt(t, p)) < n) {
        if (p + 1 >= n) return 0;
        unsigned char c1 = s[p + 1];
        if (c1 == '!') {
            if (starts_ci(t, p + 2, "[cdata[")) {
                Py_ssize_t q = p + 9;
                for (;;) {
                    const unsigned char *e = q < n ? memchr(s + q, ']', (size_t)(n - q)) : NULL;
                    if (e == NULL) { p = n; break; }
                    q = e - s;
                    if (q + 2 < n && s[q + 1] == ']' && s[q + 2] == '>') { p = q + 3; break; }
                    q++;
                }
            } else if (p + 3 < n && s[p + 2] == '-' && s[p + 3] == '-') {
                p = comment_end(t, p + 4);
            } else {
                p = bogus_end(t, p + 2);
            }
        } else if (c1 == '?') {
            p = bogus_end(t, p + 2);
        } else if (c1 == '/' || is_alpha(c1)) {
            int closing = c1 == '/';
            Py_ssize_t a = p + 1 + closing;
            if (closing) {
                if (a >= n) return 0;
                if (s[a] == '>') { p += 3; continue; }
                if (!is_alpha(s[a])) { p = bogus_end(t, a); continue; }
            }
            Py_ssize_t b = a + 1;
            while (b < n && name_char(s[b])) b++;
            Py_ssize_t e = attrs_end(t, b);
            if (e >= n) return 0;
            *tag = (Tag){closing, N_NONE, p, a, b, b, e, e + 1};
            return 1;
        } else {
            p++;
        }
    }
    return 0;
}

/* -- output: attribute values and dicts ------------------------------------------------- */

/* Bytes as html_tokens reads them: CR and CRLF to LF, NUL to U+FFFD, UTF-8 with invalid
 * bytes replaced. */
static PyObject *text_of(const unsigned char *s, Py_ssize_t len) {
    int special = 0;
    for (Py_ssize_t i = 0; i < len; i++)
        if (s[i] == '\r' || s[i] == 0) { special = 1; break; }
    if (!special) return PyUnicode_DecodeUTF8((const char *)s, len, "replace");
    unsigned char *buf = PyMem_Malloc((size_t)len * 3 + 1);
    if (buf == NULL) return PyErr_NoMemory();
    Py_ssize_t k = 0;
    for (Py_ssize_t i = 0; i < len; i++) {
        if (s[i] == '\r') {
            buf[k++] = '\n';
            if (i + 1 < len && s[i + 1] == '\n') i++;
        } else if (s[i] == 0) {
            buf[k++] = 0xEF; buf[k++] = 0xBF; buf[k++] = 0xBD;
        } else {
            buf[k++] = s[i];
        }
    }
    PyObject *out = PyUnicode_DecodeUTF8((const char *)buf, k, "replace");
    PyMem_Free(buf);
    return out;
}

/* An attribute's value: None when bare or empty unquoted, references decoded. */
static PyObject *value_of(const Text *t, Py_ssize_t a, Py_ssize_t b, int quoted) {
    if (!quoted && a == b) Py_RETURN_NONE;
    PyObject *text = text_of(t->s + a, b - a);
    if (text == NULL || memchr(t->s + a, '&', (size_t)(b - a)) == NULL) return text;
    PyObject *decoded = PyObject_CallOneArg(decode_value_fn, text);
    Py_DECREF(text);
    return decoded;
}

typedef struct {
    Py_ssize_t name_a, name_b, value_a, value_b;
    int has_value, quoted;
} Attr;

/* The next attribute of a tag's attribute text [p, end): 1 and *attr, or 0. */
static int next_attr(const Text *t, Py_ssize_t *p, Py_ssize_t end, Attr *attr) {
    const unsigned char *s = t->s;
    Py_ssize_t q = *p;
    while (q < end && (is_ws(s[q]) || s[q] == '/')) q++;
    if (q >= end || s[q] == '>') return 0;
    attr->name_a = q++;
    while (q < end && name_char(s[q]) && s[q] != '=') q++;
    attr->name_b = q;
    attr->has_value = attr->quoted = 0;
    Py_ssize_t v = q;
    while (v < end && is_ws(s[v])) v++;
    if (v < end && s[v] == '=') {
        v++;
        while (v < end && is_ws(s[v])) v++;
        const unsigned char *close = NULL;
        if (v < end && (s[v] == '"' || s[v] == '\''))
            close = memchr(s + v + 1, s[v], (size_t)(end - v - 1));
        attr->has_value = 1;
        if (close != NULL) {
            attr->quoted = 1;
            attr->value_a = v + 1;
            attr->value_b = close - s;
            q = attr->value_b + 1;
        } else {
            attr->value_a = v;
            while (v < end && !is_ws(s[v]) && s[v] != '>') v++;
            attr->value_b = q = v;
        }
    }
    *p = q;
    return 1;
}

typedef struct {
    int count;
    char names[32][24];
    Py_ssize_t lengths[32];
    PyObject *keys[32];
} Wanted;

static int wanted_index(const Wanted *w, const Text *t, Py_ssize_t a, Py_ssize_t b) {
    for (int i = 0; i < w->count; i++) {
        if (w->lengths[i] != b - a) continue;
        Py_ssize_t k = 0;
        while (k < b - a && lower(t->s[a + k]) == (unsigned char)w->names[i][k]) k++;
        if (k == b - a) return i;
    }
    return -1;
}

/* An attribute name as html_tokens gives it: ASCII lower case, NUL as U+FFFD. */
static PyObject *name_of(const Text *t, Py_ssize_t a, Py_ssize_t b) {
    unsigned char small[64] = {0};
    unsigned char *buf = (b - a) * 3 <= 64 ? small : PyMem_Malloc((size_t)(b - a) * 3);
    if (buf == NULL) return PyErr_NoMemory();
    Py_ssize_t k = 0;
    for (Py_ssize_t i = a; i < b; i++) {
        if (t->s[i] == 0) { buf[k++] = 0xEF; buf[k++] = 0xBF; buf[k++] = 0xBD; }
        else buf[k++] = lower(t->s[i]);
    }
    PyObject *out = PyUnicode_DecodeUTF8((const char *)buf, k, "replace");
    if (buf != small) PyMem_Free(buf);
    return out;
}

/* The attributes of a tag (the wanted ones, or all when w is NULL), first one winning. */
static PyObject *attributes_of(const Text *t, Py_ssize_t a, Py_ssize_t b, const Wanted *w) {
    PyObject *attrs = PyDict_New();
    Attr attr;
    Py_ssize_t p = a;
    while (attrs != NULL && next_attr(t, &p, b, &attr)) {
        PyObject *key;
        if (w != NULL) {
            int i = wanted_index(w, t, attr.name_a, attr.name_b);
            if (i < 0) continue;
            key = Py_NewRef(w->keys[i]);
        } else if ((key = name_of(t, attr.name_a, attr.name_b)) == NULL) {
            Py_CLEAR(attrs);
            break;
        }
        int seen = PyDict_Contains(attrs, key);
        if (seen == 0) {
            PyObject *value = attr.has_value
                ? value_of(t, attr.value_a, attr.value_b, attr.quoted) : Py_NewRef(Py_None);
            if (value == NULL || PyDict_SetItem(attrs, key, value) < 0) seen = -1;
            Py_XDECREF(value);
        }
        Py_DECREF(key);
        if (seen < 0) Py_CLEAR(attrs);
    }
    return attrs;
}

/* -- the scanner ------------------------------------------------------------------------ */

typedef struct {
    Py_ssize_t name_at, name_len;
    char ns;          /* 's' svg, 'm' math */
    char holds_html;  /* an integration point */
} Foreign;

typedef struct {
    Text t;
    const Wanted *wanted;
    PyObject *images, *base;
    long template_depth;
    Foreign *stack;
    Py_ssize_t depth, capacity;
    char *names;
    Py_ssize_t names_len, names_capacity;
} Scanner;

/* A foreign element's name as html_tokens compares them: `_lower`, as UTF-8. */
static int canonical_name(Scanner *sc, Py_ssize_t a, Py_ssize_t b, char **out,
                          Py_ssize_t *len) {
    PyObject *name = name_of(&sc->t, a, b);
    if (name == NULL) return -1;
    const char *utf8 = PyUnicode_AsUTF8AndSize(name, len);
    if (utf8 == NULL) { Py_DECREF(name); return -1; }
    *out = PyMem_Malloc((size_t)*len + 1);
    if (*out != NULL) memcpy(*out, utf8, (size_t)*len);
    Py_DECREF(name);
    return *out == NULL ? (PyErr_NoMemory(), -1) : 0;
}

static int name_is(const Scanner *sc, const Foreign *f, const char *name, Py_ssize_t len) {
    return f->name_len == len && memcmp(sc->names + f->name_at, name, (size_t)len) == 0;
}

static int push_foreign(Scanner *sc, const char *name, Py_ssize_t len, char ns, char html) {
    if (sc->depth == sc->capacity) {
        Py_ssize_t cap = sc->capacity ? sc->capacity * 2 : 16;
        Foreign *grown = PyMem_Realloc(sc->stack, (size_t)cap * sizeof(Foreign));
        if (grown == NULL) { PyErr_NoMemory(); return -1; }
        sc->stack = grown, sc->capacity = cap;
    }
    if (sc->names_len + len > sc->names_capacity) {
        Py_ssize_t cap = (sc->names_capacity + len) * 2 + 64;
        char *grown = PyMem_Realloc(sc->names, (size_t)cap);
        if (grown == NULL) { PyErr_NoMemory(); return -1; }
        sc->names = grown, sc->names_capacity = cap;
    }
    memcpy(sc->names + sc->names_len, name, (size_t)len);
    sc->stack[sc->depth++] = (Foreign){sc->names_len, len, ns, html};
    sc->names_len += len;
    return 0;
}

static void pop_to(Scanner *sc, Py_ssize_t depth) {
    if (depth < sc->depth) {
        sc->names_len = sc->stack[depth].name_at;
        sc->depth = depth;
    }
}

static int add_image(Scanner *sc, const Tag *tag) {
    if (sc->template_depth) return 0;
    PyObject *attrs = attributes_of(&sc->t, tag->attrs_a, tag->attrs_b, sc->wanted);
    if (attrs == NULL) return -1;
    int rc = PyList_Append(sc->images, attrs);
    Py_DECREF(attrs);
    return rc;
}

static int read_base(Scanner *sc, const Tag *tag) {
    if (sc->base != Py_None || sc->template_depth) return 0;
    Attr attr;
    Py_ssize_t p = tag->attrs_a;
    while (next_attr(&sc->t, &p, tag->attrs_b, &attr)) {
        if (attr.name_b - attr.name_a != 4 || !starts_ci(&sc->t, attr.name_a, "href")) continue;
        PyObject *href = attr.has_value
            ? value_of(&sc->t, attr.value_a, attr.value_b, attr.quoted) : Py_NewRef(Py_None);
        if (href == NULL) return -1;
        if (href == Py_None) {
            Py_DECREF(href);
            if ((href = PyUnicode_FromString("")) == NULL) return -1;
        }
        Py_SETREF(sc->base, href);
        return 0;
    }
    return 0;
}

/* `<x ... />`: the attribute text ends in "/" that is not part of an unquoted value. */
static int self_closing(const Text *t, Py_ssize_t a, Py_ssize_t b) {
    if (b <= a || t->s[b - 1] != '/') return 0;
    Py_ssize_t last_stop = a - 1;  /* the last whitespace or ">" */
    for (Py_ssize_t i = a; i < b; i++)
        if (is_ws(t->s[i]) || t->s[i] == '>') last_stop = i;
    for (Py_ssize_t i = a; i < b; i++) {
        if (t->s[i] != '=') continue;
        Py_ssize_t j = i + 1;
        while (j < b && is_ws(t->s[j])) j++;
        if (j < b && (t->s[j] == '"' || t->s[j] == '\'')) continue;
        if (j > last_stop) return 0;  /* `<svg a=/>`: the "/" is the value's */
    }
    return 1;
}

static int call_predicate(PyObject *fn, const Text *t, const Tag *tag) {
    PyObject *attrs = PyBytes_FromStringAndSize((const char *)t->s + tag->attrs_a,
                                                tag->attrs_b - tag->attrs_a);
    if (attrs == NULL) return -1;
    PyObject *result = PyObject_CallOneArg(fn, attrs);
    Py_DECREF(attrs);
    if (result == NULL) return -1;
    int truth = PyObject_IsTrue(result);
    Py_DECREF(result);
    return truth;
}

static int html_tag(Scanner *sc, const Tag *tag, Py_ssize_t *pos) {
    int id = tag->id;
    if (tag->closing) {
        if (id == N_TEMPLATE) {
            if (sc->template_depth > 0) sc->template_depth--;
        } else if (sc->depth) {
            const char *name = NAMES[id];
            if (name_is(sc, &sc->stack[sc->depth - 1], name, (Py_ssize_t)strlen(name)))
                pop_to(sc, sc->depth - 1);
        }
        return 0;
    }
    switch (id) {
    case N_IMG: case N_IMAGE: return add_image(sc, tag);
    case N_BASE: return read_base(sc, tag);
    case N_SCRIPT: *pos = script_end(&sc->t, *pos); return 0;
    case N_PLAINTEXT: *pos = sc->t.n; return 0;
    case N_TEMPLATE: sc->template_depth++; return 0;
    case N_SVG: case N_MATH:
        if (self_closing(&sc->t, tag->attrs_a, tag->attrs_b)) return 0;
        return push_foreign(sc, NAMES[id], (Py_ssize_t)strlen(NAMES[id]),
                            id == N_SVG ? 's' : 'm', 0);
    default:
        if (IS_RAWTEXT(id)) *pos = raw_end(&sc->t, *pos, id);
        return 0;
    }
}

static int in_list(const char *name, Py_ssize_t len, const char *const *list) {
    for (; *list; list++)
        if ((Py_ssize_t)strlen(*list) == len && memcmp(*list, name, (size_t)len) == 0) return 1;
    return 0;
}

static void leave_foreign(Scanner *sc) {
    while (sc->depth && !sc->stack[sc->depth - 1].holds_html) pop_to(sc, sc->depth - 1);
}

static int holds_html(Scanner *sc, const Tag *tag, const char *name, Py_ssize_t len, char ns) {
    static const char *const svg_points[] = {"foreignobject", "desc", "title", NULL};
    static const char *const math_points[] = {"mi", "mo", "mn", "ms", "mtext", NULL};
    if (ns == 's') return in_list(name, len, svg_points);
    if (in_list(name, len, math_points)) return 1;
    if (len == 14 && memcmp(name, "annotation-xml", 14) == 0)
        return call_predicate(html_encoding_fn, &sc->t, tag);
    return 0;
}

static int foreign_start(Scanner *sc, const Tag *tag, char *name, Py_ssize_t len,
                         Py_ssize_t *pos) {
    int breaks = in_list(name, len, BREAKOUT);
    if (!breaks && len == 4 && memcmp(name, "font", 4) == 0)
        breaks = call_predicate(font_breaks_out_fn, &sc->t, tag);  /* color, face, size */
    if (breaks < 0) return -1;
    if (breaks) { leave_foreign(sc); *pos = tag->start; return 0; }
    *pos = tag->end;
    if (len == 4 && memcmp(name, "base", 4) == 0 && read_base(sc, tag) < 0) return -1;
    if (self_closing(&sc->t, tag->attrs_a, tag->attrs_b)) return 0;
    char ns = sc->stack[sc->depth - 1].ns;
    int html = holds_html(sc, tag, name, len, ns);
    return html < 0 ? -1 : push_foreign(sc, name, len, ns, (char)html);
}

static int foreign_tag(Scanner *sc, const Tag *tag, Py_ssize_t *pos) {
    char *name;
    Py_ssize_t len;
    if (canonical_name(sc, tag->name_a, tag->name_b, &name, &len) < 0) return -1;
    int rc = 0;
    if (!tag->closing) {
        rc = foreign_start(sc, tag, name, len, pos);
    } else if ((len == 2 && memcmp(name, "br", 2) == 0) || (len == 1 && name[0] == 'p')) {
        leave_foreign(sc);
        *pos = tag->start;
    } else {
        for (Py_ssize_t d = sc->depth - 1; d >= 0; d--) {
            if (name_is(sc, &sc->stack[d], name, len)) { pop_to(sc, d); break; }
            if (sc->stack[d].holds_html) break;
        }
        *pos = tag->end;
    }
    PyMem_Free(name);
    return rc;
}

static int run(Scanner *sc) {
    Py_ssize_t pos = 0;
    Tag tag;
    while (pos < sc->t.n) {
        int rc;
        if (sc->depth && !sc->stack[sc->depth - 1].holds_html) {
            if (!next_foreign(&sc->t, pos, &tag)) break;
            rc = foreign_tag(sc, &tag, &pos);
        } else {
            if (!next_html(&sc->t, pos, sc->depth > 0, &tag)) break;
            pos = tag.end;
            rc = html_tag(sc, &tag, &pos);
        }
        if (rc < 0) return -1;
    }
    return 0;
}

/* The wanted names, lower-cased; 0, or 1 when they are not all short ASCII names. */
static int read_wanted(PyObject *wanted, Wanted *w) {
    w->count = 0;
    PyObject *it = PyObject_GetIter(wanted), *item;
    if (it == NULL) return -1;
    int unusable = 0;
    while ((item = PyIter_Next(it)) != NULL) {
        Py_ssize_t len;
        const char *name = PyUnicode_Check(item) ? PyUnicode_AsUTF8AndSize(item, &len) : NULL;
        if (name == NULL || !PyUnicode_IS_ASCII(item) || len >= 24 || w->count == 32) {
            PyErr_Clear();
            unusable = 1;
        } else {
            char *dst = w->names[w->count];
            for (Py_ssize_t i = 0; i < len; i++) dst[i] = (char)lower((unsigned char)name[i]);
            w->lengths[w->count] = len;
            w->keys[w->count] = PyUnicode_FromStringAndSize(dst, len);
            if (w->keys[w->count] == NULL) unusable = -1;
            else w->count++;
        }
        Py_DECREF(item);
        if (unusable) break;
    }
    Py_DECREF(it);
    return PyErr_Occurred() ? -1 : unusable;
}

static PyObject *scan(PyObject *self, PyObject *args) {
    PyObject *page, *wanted = Py_None;
    if (!PyArg_ParseTuple(args, "O|O:scan", &page, &wanted)) return NULL;
    if (decode_value_fn == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "_html_scan.configure() was not called");
        return NULL;
    }
    Scanner sc = {0};
    if (PyUnicode_Check(page)) {
        sc.t.s = (const unsigned char *)PyUnicode_AsUTF8AndSize(page, &sc.t.n);
        if (sc.t.s == NULL) { PyErr_Clear(); Py_RETURN_NONE; }  /* lone surrogates */
    } else if (PyBytes_Check(page)) {
        sc.t.s = (const unsigned char *)PyBytes_AS_STRING(page), sc.t.n = PyBytes_GET_SIZE(page);
    } else if (PyByteArray_Check(page)) {
        sc.t.s = (const unsigned char *)PyByteArray_AS_STRING(page);
        sc.t.n = PyByteArray_GET_SIZE(page);
    } else {
        PyErr_Format(PyExc_TypeError, "scan() needs str or bytes, not %.100s",
                     Py_TYPE(page)->tp_name);
        return NULL;
    }
    Wanted w;
    w.count = 0;
    if (wanted != Py_None) {
        int unusable = read_wanted(wanted, &w);
        if (unusable) {
            for (int i = 0; i < w.count; i++) Py_DECREF(w.keys[i]);
            if (unusable < 0) return NULL;
            Py_RETURN_NONE;
        }
        sc.wanted = &w;
    }
    PyObject *result = NULL;
    sc.images = PyList_New(0);
    sc.base = Py_NewRef(Py_None);
    if (sc.images != NULL && run(&sc) == 0) result = PyTuple_Pack(2, sc.base, sc.images);
    Py_XDECREF(sc.images);
    Py_DECREF(sc.base);
    PyMem_Free(sc.stack);
    PyMem_Free(sc.names);
    for (int i = 0; i < w.count; i++) Py_DECREF(w.keys[i]);
    return result;
}

static PyObject *configure(PyObject *self, PyObject *args) {
    PyObject *decode, *font, *encoding;
    if (!PyArg_ParseTuple(args, "OOO:configure", &decode, &font, &encoding)) return NULL;
    Py_XSETREF(decode_value_fn, Py_NewRef(decode));
    Py_XSETREF(font_breaks_out_fn, Py_NewRef(font));
    Py_XSETREF(html_encoding_fn, Py_NewRef(encoding));
    Py_RETURN_NONE;
}

/* -- URL choice: html.choose_url_host's lazy-attribute/src loop, through ada's C API ------
 *
 * ada_url's cffi module is a dependency; its C functions' addresses are handed over once
 * (`bind_ada`), so a candidate's URL is resolved, checked and sliced without a Python call.
 * The rules are urls.resolve_with_host's; whatever this code would read differently from
 * Python (a value that is not UTF-8, a non-ASCII href, a host ending in ".") makes
 * `first_url` return None and the caller runs the Python loop instead.
 */
typedef struct { const char *data; size_t length; } AdaString;
typedef void *(*AdaParseWithBase)(const char *, size_t, const char *, size_t);
typedef _Bool (*AdaIsValid)(void *);
typedef AdaString (*AdaGetHref)(void *);
typedef void (*AdaFree)(void *);
static AdaParseWithBase ada_parse_with_base;
static AdaIsValid ada_is_valid;
static AdaGetHref ada_get_href;
static AdaFree ada_free;
static Py_ssize_t max_url_chars;

enum { URL_OK, URL_REJECTED, URL_FALLBACK };

/* The host of an authority, as urls._host: "[v6]" kept with its brackets, else up to the
 * last ':'. Sets *host_len; returns its start. */
static const char *host_of(const char *a, size_t n, size_t *host_len) {
    if (n && a[0] == '[') {
        const char *close = memchr(a, ']', n);
        *host_len = close ? (size_t)(close - a) + 1 : 0;
        return a;
    }
    size_t end = n;
    while (end && a[end - 1] != ':') end--;
    *host_len = end ? end - 1 : n;
    return a;
}

static int resolve_value(const char *v, Py_ssize_t n, const char *base, Py_ssize_t base_len,
                         PyObject **url, PyObject **host, const char **reason) {
    while (n && is_ws((unsigned char)v[0])) { v++; n--; }
    while (n && is_ws((unsigned char)v[n - 1])) n--;
    if (!n) { *reason = "no_src"; return URL_REJECTED; }
    if (n >= 5) {
        int ascii = 1;
        for (int i = 0; i < 5; i++) ascii &= (unsigned char)v[i] < 0x80;
        if (ascii && PyOS_strnicmp(v, "data:", 5) == 0) { *reason = "data_uri"; return URL_REJECTED; }
    }
    void *parsed = ada_parse_with_base(v, (size_t)n, base, (size_t)base_len);
    if (!ada_is_valid(parsed)) { ada_free(parsed); *reason = "invalid_url"; return URL_REJECTED; }
    AdaString href = ada_get_href(parsed);
    const char *s = href.data;
    size_t len = href.length, start;
    int status = URL_OK;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] >= 0x80) { status = URL_FALLBACK; goto done; }
    if (len >= 7 && memcmp(s, "http://", 7) == 0) start = 7;
    else if (len >= 8 && memcmp(s, "https://", 8) == 0) start = 8;
    else { *reason = "unsupported_scheme"; status = URL_REJECTED; goto done; }
    const char *hash = memchr(s, '#', len);
    size_t out_len = hash ? (size_t)(hash - s) : len;
    const char *slash = memchr(s + start, '/', out_len - start);
    size_t authority_len = (slash ? (size_t)(slash - s) : out_len) - start;
    if (memchr(s + start, '@', authority_len)) {
        *reason = "credentials_in_url"; status = URL_REJECTED; goto done;
    }
    size_t host_len;
    const char *h = host_of(s + start, authority_len, &host_len);
    if (host_len && h[host_len - 1] == '.') { status = URL_FALLBACK; goto done; }
    if (!host_len) { *reason = "invalid_url"; status = URL_REJECTED; goto done; }
    if ((Py_ssize_t)out_len > max_url_chars) { *reason = "url_too_long"; status = URL_REJECTED; goto done; }
    *url = PyUnicode_DecodeASCII(s, (Py_ssize_t)out_len, NULL);
    *host = *url ? PyUnicode_DecodeASCII(h, (Py_ssize_t)host_len, NULL) : NULL;
    if (!*host) { Py_CLEAR(*url); status = -1; }
done:
    ada_free(parsed);
    return status;
}

static PyObject *first_url(PyObject *self, PyObject *args) {
    PyObject *attrs, *names, *base;
    if (!PyArg_ParseTuple(args, "O!O!U:first_url", &PyDict_Type, &attrs, &PyTuple_Type, &names,
                          &base))
        return NULL;
    if (!ada_parse_with_base) Py_RETURN_NONE;
    Py_ssize_t base_len;
    const char *base_utf8 = PyUnicode_AsUTF8AndSize(base, &base_len);
    if (!base_utf8) { PyErr_Clear(); Py_RETURN_NONE; }
    const char *first_reason = NULL;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(names); i++) {
        PyObject *name = PyTuple_GET_ITEM(names, i);
        PyObject *value = PyDict_GetItemWithError(attrs, name);
        if (!value) {
            if (PyErr_Occurred()) return NULL;
            continue;
        }
        if (value == Py_None) continue;
        if (!PyUnicode_Check(value)) Py_RETURN_NONE;
        if (PyUnicode_GET_LENGTH(value) == 0) continue;
        Py_ssize_t n;
        const char *v = PyUnicode_AsUTF8AndSize(value, &n);
        if (!v) { PyErr_Clear(); Py_RETURN_NONE; }
        PyObject *url = NULL, *host = NULL;
        const char *reason = NULL;
        int status = resolve_value(v, n, base_utf8, base_len, &url, &host, &reason);
        if (status < 0) return NULL;
        if (status == URL_FALLBACK) Py_RETURN_NONE;
        if (status == URL_OK) return Py_BuildValue("(NNOO)", url, host, name, Py_None);
        if (!first_reason) first_reason = reason;
    }
    if (!first_reason) return Py_BuildValue("(Oss O)", Py_None, "", "", Py_None);
    return Py_BuildValue("(Osss)", Py_None, "", "", first_reason);
}

static PyObject *bind_ada(PyObject *self, PyObject *args) {
    unsigned long long parse, valid, href, release;
    Py_ssize_t max_chars;
    if (!PyArg_ParseTuple(args, "KKKKn:bind_ada", &parse, &valid, &href, &release, &max_chars))
        return NULL;
    ada_parse_with_base = (AdaParseWithBase)(uintptr_t)parse;
    ada_is_valid = (AdaIsValid)(uintptr_t)valid;
    ada_get_href = (AdaGetHref)(uintptr_t)href;
    ada_free = (AdaFree)(uintptr_t)release;
    max_url_chars = max_chars;
    Py_RETURN_NONE;
}

/* -- WARC header blocks: warc._parse_headers' success path ---------------------------------
 *
 * `warc_head(data, pos, limit)` parses the header block at `pos` as warc._parse_headers
 * does: (headers with lower-cased names, block start, Content-Length). It returns None,
 * and leaves the block to Python (which also words the errors), for anything but a plain
 * ASCII block with a known version line and a Content-Length of digits only: non-ASCII
 * bytes, U+001C..U+001F (whitespace to str.strip), no end within `limit`, odd lengths.
 */
static inline int is_header_space(unsigned char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

static PyObject *stripped(const char *s, Py_ssize_t a, Py_ssize_t b, int lower) {
    while (a < b && is_header_space((unsigned char)s[a])) a++;
    while (b > a && is_header_space((unsigned char)s[b - 1])) b--;
    PyObject *out = PyUnicode_New(b - a, 127);
    if (out == NULL) return NULL;
    Py_UCS1 *dst = PyUnicode_1BYTE_DATA(out);
    for (Py_ssize_t i = a; i < b; i++) {
        unsigned char c = (unsigned char)s[i];
        dst[i - a] = (lower && c >= 'A' && c <= 'Z') ? (Py_UCS1)(c + 32) : c;
    }
    return out;
}

static int version_line(const char *s, Py_ssize_t n) {
    static const char *const versions[] = {"0.17", "0.18", "1.0", "1.1", NULL};
    if (n < 8 || memcmp(s, "WARC/", 5) != 0) return 0;
    for (int v = 0; versions[v]; v++) {
        Py_ssize_t len = (Py_ssize_t)strlen(versions[v]);
        if (n - 5 < len || memcmp(s + 5, versions[v], (size_t)len) != 0) continue;
        for (Py_ssize_t i = 5 + len; i < n; i++)
            if (!is_header_space((unsigned char)s[i])) return 0;
        return 1;
    }
    return 0;
}

static PyObject *parse_warc_head(const char *s, Py_ssize_t pos, Py_ssize_t end) {
    for (Py_ssize_t i = pos; i < end; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x80 || (c >= 0x1c && c <= 0x1f)) Py_RETURN_NONE;
    }
    Py_ssize_t line_end = pos;
    while (line_end < end && !(s[line_end] == '\r' && line_end + 1 < end && s[line_end + 1] == '\n'))
        line_end++;
    if (!version_line(s + pos, line_end - pos)) Py_RETURN_NONE;
    PyObject *headers = PyDict_New(), *version = stripped(s, pos + 5, line_end, 0);
    if (headers == NULL || version == NULL || PyDict_SetItemString(headers, "warc-version", version)) {
        Py_XDECREF(version);
        Py_XDECREF(headers);
        return NULL;
    }
    Py_DECREF(version);
    Py_ssize_t at = line_end + 2;
    while (at <= end) {
        Py_ssize_t stop = at;
        while (stop < end && !(s[stop] == '\r' && stop + 1 < end && s[stop + 1] == '\n')) stop++;
        const char *colon = memchr(s + at, ':', (size_t)(stop - at));
        if (colon != NULL) {
            Py_ssize_t c = colon - s;
            PyObject *name = stripped(s, at, c, 1), *value = name ? stripped(s, c + 1, stop, 0) : NULL;
            int failed = value == NULL || PyDict_SetItem(headers, name, value) < 0;
            Py_XDECREF(name);
            Py_XDECREF(value);
            if (failed) { Py_DECREF(headers); return NULL; }
        }
        at = stop + 2;
    }
    PyObject *length_text = PyDict_GetItemString(headers, "content-length");
    Py_ssize_t digits = length_text ? PyUnicode_GET_LENGTH(length_text) : 0;
    if (digits < 1 || digits > 18) { Py_DECREF(headers); Py_RETURN_NONE; }
    const Py_UCS1 *d = PyUnicode_1BYTE_DATA(length_text);
    long long length = 0;
    for (Py_ssize_t i = 0; i < digits; i++) {
        if (d[i] < '0' || d[i] > '9') { Py_DECREF(headers); Py_RETURN_NONE; }
        length = length * 10 + (d[i] - '0');
    }
    return Py_BuildValue("(NnL)", headers, end + 4, length);
}

static PyObject *warc_head(PyObject *self, PyObject *args) {
    Py_buffer data;
    Py_ssize_t pos, limit;
    if (!PyArg_ParseTuple(args, "y*nn:warc_head", &data, &pos, &limit)) return NULL;
    const char *s = data.buf;
    Py_ssize_t stop = pos + limit < data.len ? pos + limit : data.len, end = -1;
    for (Py_ssize_t i = pos < 0 ? 0 : pos; i + 4 <= stop; i++) {
        const char *cr = memchr(s + i, '\r', (size_t)(stop - i));
        if (cr == NULL) break;
        i = cr - s;
        if (i + 4 <= stop && memcmp(s + i, "\r\n\r\n", 4) == 0) { end = i; break; }
    }
    PyObject *out = (pos < 0 || end < 0) ? Py_NewRef(Py_None) : parse_warc_head(s, pos, end);
    PyBuffer_Release(&data);
    return out;
}

/* -- HTTP response heads: http.parse_response_head's success path --------------------------
 *
 * `http_head(block)` gives (status, headers, body start) as http.python_parse_response_head
 * does: lines end at LF or CRLF, names are lower-cased, repeated headers joined with ", ".
 * It returns None, leaving the head to Python (which also raises the errors), for a head
 * with non-ASCII bytes, without an end, or without a plain `HTTP/x <digits>` status line.
 */
static PyObject *header_text(const char *s, Py_ssize_t a, Py_ssize_t b, int lower) {
    return stripped(s, a, b, lower);
}

static int add_header(PyObject *headers, const char *s, Py_ssize_t a, Py_ssize_t b) {
    const char *colon = memchr(s + a, ':', (size_t)(b - a));
    if (colon == NULL) return 0;
    Py_ssize_t c = colon - s;
    PyObject *key = header_text(s, a, c, 1), *text = key ? header_text(s, c + 1, b, 0) : NULL;
    if (text == NULL) { Py_XDECREF(key); return -1; }
    PyObject *old = PyDict_GetItemWithError(headers, key);
    if (old != NULL) {
        PyObject *joined = PyUnicode_FromFormat("%U, %U", old, text);
        Py_SETREF(text, joined);
    }
    int failed = text == NULL || PyErr_Occurred() || PyDict_SetItem(headers, key, text) < 0;
    Py_DECREF(key);
    Py_XDECREF(text);
    return failed ? -1 : 0;
}

static PyObject *http_head(PyObject *self, PyObject *args) {
    Py_buffer data;
    if (!PyArg_ParseTuple(args, "y*:http_head", &data)) return NULL;
    const char *s = data.buf;
    Py_ssize_t n = data.len, end = -1, sep = 4, i;
    for (i = 0; i + 4 <= n; i++) {
        const char *cr = memchr(s + i, '\r', (size_t)(n - i));
        if (cr == NULL) break;
        i = cr - s;
        if (i + 4 <= n && memcmp(s + i, "\r\n\r\n", 4) == 0) { end = i; break; }
    }
    if (end < 0) {
        sep = 2;
        for (i = 0; i + 2 <= n; i++) {
            const char *lf = memchr(s + i, '\n', (size_t)(n - i));
            if (lf == NULL) break;
            i = lf - s;
            if (i + 2 <= n && s[i + 1] == '\n') { end = i; break; }
        }
    }
    PyObject *out = NULL, *headers = NULL;
    if (end < 0) goto python;
    for (i = 0; i < end; i++)
        if ((unsigned char)s[i] >= 0x80) goto python;
    Py_ssize_t line_end = 0;
    while (line_end < end && s[line_end] != '\n') line_end++;
    Py_ssize_t a = 0, b;
    while (a < line_end && is_header_space((unsigned char)s[a])) a++;
    for (b = a; b < line_end && !is_header_space((unsigned char)s[b]); b++) {}
    if (b - a < 5 || memcmp(s + a, "HTTP/", 5) != 0) goto python;
    for (a = b; a < line_end && is_header_space((unsigned char)s[a]); a++) {}
    for (b = a; b < line_end && !is_header_space((unsigned char)s[b]); b++) {}
    if (b - a < 1 || b - a > 9) goto python;
    long status = 0;
    for (i = a; i < b; i++) {
        if (s[i] < '0' || s[i] > '9') goto python;
        status = status * 10 + (s[i] - '0');
    }
    headers = PyDict_New();
    if (headers == NULL) goto done;
    for (a = line_end + 1; a <= end && line_end < end; a = line_end + 1) {
        for (line_end = a; line_end < end && s[line_end] != '\n'; line_end++) {}
        b = (line_end < end && line_end > a && s[line_end - 1] == '\r') ? line_end - 1 : line_end;
        if (add_header(headers, s, a, b) < 0) { Py_CLEAR(headers); goto done; }
    }
    out = Py_BuildValue("(lNn)", status, headers, end + sep);
    headers = NULL;
    goto done;
python:
    out = Py_NewRef(Py_None);
done:
    Py_XDECREF(headers);
    PyBuffer_Release(&data);
    return out;
}

static PyMethodDef methods[] = {
    {"scan", scan, METH_VARARGS,
     "scan(page, wanted=None) -> (base href or None, [attribute dicts of <img>/<image>]), "
     "or None where the pure-Python scanner must be used."},
    {"configure", configure, METH_VARARGS,
     "configure(decode_attribute_value, font_breaks_out, html_encoding): html_tokens' helpers."},
    {"first_url", first_url, METH_VARARGS,
     "first_url(attrs, names, base) -> (url, host, name, None) for the first of `names` that "
     "resolves, (None, '', '', first reject reason or None) if none does, or None where the "
     "Python loop must decide."},
    {"warc_head", warc_head, METH_VARARGS,
     "warc_head(data, pos, limit) -> (headers, block start, Content-Length), or None where "
     "warc._parse_headers must decide."},
    {"http_head", http_head, METH_VARARGS,
     "http_head(block) -> (status, headers, body start), or None where "
     "http.python_parse_response_head must decide."},
    {"bind_ada", bind_ada, METH_VARARGS,
     "bind_ada(parse_with_base, is_valid, get_href, free, max_url_chars): ada's C functions."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_html_scan",
    "The compiled streaming tokenizer of html_tokens (same output as its pure-Python scan).",
    -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__html_scan(void) { return PyModule_Create(&module); }

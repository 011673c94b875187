"""SHA-256 of a byte buffer reduced mod ``num_buckets``, in numba (the DSIR bucket hash).

The reference buckets an n-gram as ``int(sha256(utf8).hexdigest(), 16) % num_buckets``;
:func:`sha256_mod` computes the same number inside the batch kernel without leaving numba
(FIPS 180-4 rounds on uint64 lanes masked to 32 bits, then the digest reduced word by word).
"""

from __future__ import annotations

import numba as nb
import numpy as np

SHA256_K = np.array(
    [
        0x428A2F98,
        0x71374491,
        0xB5C0FBCF,
        0xE9B5DBA5,
        0x3956C25B,
        0x59F111F1,
        0x923F82A4,
        0xAB1C5ED5,
        0xD807AA98,
        0x12835B01,
        0x243185BE,
        0x550C7DC3,
        0x72BE5D74,
        0x80DEB1FE,
        0x9BDC06A7,
        0xC19BF174,
        0xE49B69C1,
        0xEFBE4786,
        0x0FC19DC6,
        0x240CA1CC,
        0x2DE92C6F,
        0x4A7484AA,
        0x5CB0A9DC,
        0x76F988DA,
        0x983E5152,
        0xA831C66D,
        0xB00327C8,
        0xBF597FC7,
        0xC6E00BF3,
        0xD5A79147,
        0x06CA6351,
        0x14292967,
        0x27B70A85,
        0x2E1B2138,
        0x4D2C6DFC,
        0x53380D13,
        0x650A7354,
        0x766A0ABB,
        0x81C2C92E,
        0x92722C85,
        0xA2BFE8A1,
        0xA81A664B,
        0xC24B8B70,
        0xC76C51A3,
        0xD192E819,
        0xD6990624,
        0xF40E3585,
        0x106AA070,
        0x19A4C116,
        0x1E376C08,
        0x2748774C,
        0x34B0BCB5,
        0x391C0CB3,
        0x4ED8AA4A,
        0x5B9CCA4F,
        0x682E6FF3,
        0x748F82EE,
        0x78A5636F,
        0x84C87814,
        0x8CC70208,
        0x90BEFFFA,
        0xA4506CEB,
        0xBEF9A3F7,
        0xC67178F2,
    ],
    dtype=np.uint64,
)
SHA256_H0 = np.array(
    [0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A, 0x510E527F, 0x9B05688C, 0x1F83D9AB, 0x5BE0CD19],
    dtype=np.uint64,
)


@nb.njit(cache=True, inline="always")
def _rotr(x, n):
    return ((x >> np.uint64(n)) | (x << np.uint64(32 - n))) & np.uint64(0xFFFFFFFF)


@nb.njit(cache=True, nogil=True)
def sha256_mod(buf, length, num_buckets, K, H0, w):
    """SHA-256 of ``buf[:length]`` reduced mod ``num_buckets`` (as a big-endian integer).

    ``K`` and ``H0`` are :data:`SHA256_K` and :data:`SHA256_H0`; ``w`` is a 64-word uint64
    scratch array (the message schedule), reused across calls by the batch kernel.
    """
    m32 = np.uint64(0xFFFFFFFF)
    h = H0.copy()
    total = ((length + 8) // 64 + 1) * 64
    bitlen = np.uint64(length) * np.uint64(8)
    for blk in range(0, total, 64):
        for t in range(16):
            v = np.uint64(0)
            for b in range(4):
                i = blk + 4 * t + b
                if i < length:
                    byte = np.uint64(buf[i])
                elif i == length:
                    byte = np.uint64(0x80)
                elif i >= total - 8:
                    byte = (bitlen >> np.uint64(8 * (total - 1 - i))) & np.uint64(0xFF)
                else:
                    byte = np.uint64(0)
                v = (v << np.uint64(8)) | byte
            w[t] = v
        for t in range(16, 64):
            x = w[t - 15]
            y = w[t - 2]
            s0 = _rotr(x, 7) ^ _rotr(x, 18) ^ (x >> np.uint64(3))
            s1 = _rotr(y, 17) ^ _rotr(y, 19) ^ (y >> np.uint64(10))
            w[t] = (w[t - 16] + s0 + w[t - 7] + s1) & m32
        a = h[0]
        b_ = h[1]
        c = h[2]
        d = h[3]
        e = h[4]
        f = h[5]
        g = h[6]
        hh = h[7]
        for t in range(64):
            S1 = _rotr(e, 6) ^ _rotr(e, 11) ^ _rotr(e, 25)
            ch = (e & f) ^ ((~e & m32) & g)
            t1 = (hh + S1 + ch + K[t] + w[t]) & m32
            S0 = _rotr(a, 2) ^ _rotr(a, 13) ^ _rotr(a, 22)
            maj = (a & b_) ^ (a & c) ^ (b_ & c)
            t2 = (S0 + maj) & m32
            hh = g
            g = f
            f = e
            e = (d + t1) & m32
            d = c
            c = b_
            b_ = a
            a = (t1 + t2) & m32
        h[0] = (h[0] + a) & m32
        h[1] = (h[1] + b_) & m32
        h[2] = (h[2] + c) & m32
        h[3] = (h[3] + d) & m32
        h[4] = (h[4] + e) & m32
        h[5] = (h[5] + f) & m32
        h[6] = (h[6] + g) & m32
        h[7] = (h[7] + hh) & m32
    r = np.uint64(0)
    B = np.uint64(num_buckets)
    for i in range(8):
        r = ((r << np.uint64(32)) + h[i]) % B
    return np.int64(r)


@nb.njit(cache=True, nogil=True)
def sha256_mod_bytes(buf: np.ndarray, num_buckets: int) -> int:
    """SHA-256 of a uint8 array reduced mod ``num_buckets`` (numba; for tests)."""
    w = np.zeros(64, dtype=np.uint64)
    return sha256_mod(buf, buf.shape[0], num_buckets, SHA256_K, SHA256_H0, w)

/*
 * nvmechaos integrity writer: runs in the guest, writes self-describing blocks to a block device
 * with O_DIRECT, one at a time, and reports on stdout what the device acknowledged:
 *
 *   S <seed> <block_size> <blocks> <first_block>   once, before the first write
 *   W <block> <generation>                         after each plain write returned
 *   D <block> <generation>                         after each O_DSYNC (FUA) write returned
 *   F <n>                                          after the n-th fdatasync() returned
 *   E <writes> <flushes>                           after the last write (count= reached)
 *   X <errno> <message>                            on an error (exit status 1)
 *
 * Every line is written with one write(2) as soon as the operation returned, so a line the host
 * received is an operation the device acknowledged. Block layout (little endian, see
 * nvmechaos/faults/integrity.py, which checks it):
 *
 *   0  magic "NVCINTG1"   8  block u64   16 generation u64   24 seed u64   32 block size u32
 *   36 crc32 of bytes 0..35 (header)     40 crc32 of the whole block with bytes 40..43 zero
 *   44 0 u32              48.. payload: splitmix64 words of (seed, block, generation)
 *
 * Usage: integrity-writer dev=PATH [bs=4096] [blocks=256] [first=0] [seed=N] [count=0]
 *                         [flush_every=0] [fua_every=0] [idle=1]
 * count=0 writes until killed; idle=1 sleeps after count= writes (waiting for the power cut)
 * instead of exiting. Built with gcc -static on the host; no dependencies in the guest.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAGIC "NVCINTG1"
#define GOLDEN 0x9E3779B97F4A7C15ULL
#define GEN_MIX 0xC2B2AE3D27D4EB4FULL

static uint32_t crc_table[256];

static void crc_init(void) {
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = n;
        for (int k = 0; k < 8; k++) c = (c & 1) ? 0xEDB88320U ^ (c >> 1) : c >> 1;
        crc_table[n] = c;
    }
}

static uint32_t crc32_of(const unsigned char *data, size_t length) {
    uint32_t c = 0xFFFFFFFFU;
    for (size_t i = 0; i < length; i++) c = crc_table[(c ^ data[i]) & 0xFF] ^ (c >> 8);
    return c ^ 0xFFFFFFFFU;
}

static uint64_t mix(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static void put64(unsigned char *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static void put32(unsigned char *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static void say(const char *line) {
    size_t length = strlen(line);
    while (length > 0) {
        ssize_t n = write(1, line, length);
        if (n < 0) {
            if (errno == EINTR) continue;
            _exit(2); /* the host hung up */
        }
        line += n;
        length -= (size_t)n;
    }
}

static void die(const char *what) {
    char line[256];
    snprintf(line, sizeof line, "X %d %s: %s\n", errno, what, strerror(errno));
    say(line);
    exit(1);
}

static void fill(unsigned char *buffer, uint32_t bs, uint64_t block, uint64_t gen, uint64_t seed) {
    memset(buffer, 0, 48);
    memcpy(buffer, MAGIC, 8);
    put64(buffer + 8, block);
    put64(buffer + 16, gen);
    put64(buffer + 24, seed);
    put32(buffer + 32, bs);
    put32(buffer + 36, crc32_of(buffer, 36));
    uint64_t base = seed ^ (block * GOLDEN) ^ (gen * GEN_MIX);
    for (uint32_t i = 0; i < (bs - 48) / 8; i++) put64(buffer + 48 + 8 * i, mix(base + (i + 1) * GOLDEN));
    put32(buffer + 40, crc32_of(buffer, bs));
}

static uint64_t number(const char *text, const char *name) {
    char *end;
    errno = 0;
    unsigned long long value = strtoull(text, &end, 0);
    if (errno || *end || end == text) {
        fprintf(stderr, "integrity-writer: %s=%s is not a number\n", name, text);
        exit(64);
    }
    return value;
}

int main(int argc, char **argv) {
    const char *device = NULL;
    uint64_t bs = 4096, blocks = 256, first = 0, seed = 1, count = 0, flush_every = 0, fua_every = 0;
    uint64_t idle = 1;
    for (int i = 1; i < argc; i++) {
        char *eq = strchr(argv[i], '=');
        if (!eq) {
            fprintf(stderr, "integrity-writer: argument '%s' is not key=value\n", argv[i]);
            return 64;
        }
        *eq = 0;
        const char *key = argv[i], *value = eq + 1;
        if (!strcmp(key, "dev")) device = value;
        else if (!strcmp(key, "bs")) bs = number(value, key);
        else if (!strcmp(key, "blocks")) blocks = number(value, key);
        else if (!strcmp(key, "first")) first = number(value, key);
        else if (!strcmp(key, "seed")) seed = number(value, key);
        else if (!strcmp(key, "count")) count = number(value, key);
        else if (!strcmp(key, "flush_every")) flush_every = number(value, key);
        else if (!strcmp(key, "fua_every")) fua_every = number(value, key);
        else if (!strcmp(key, "idle")) idle = number(value, key);
        else {
            fprintf(stderr, "integrity-writer: unknown argument '%s'\n", key);
            return 64;
        }
    }
    if (!device || bs < 512 || bs % 512 || bs > (1 << 20) || blocks == 0) {
        fprintf(stderr, "integrity-writer: need dev=, bs a multiple of 512 (<= 1 MiB), blocks > 0\n");
        return 64;
    }
    crc_init();
    int fd = open(device, O_WRONLY | O_DIRECT);
    if (fd < 0) die("open");
    int fua_fd = open(device, O_WRONLY | O_DIRECT | O_DSYNC);
    if (fua_fd < 0) die("open O_DSYNC");
    unsigned char *buffer;
    if (posix_memalign((void **)&buffer, 4096, bs)) die("posix_memalign");
    uint64_t *gens = calloc(blocks, sizeof *gens);
    if (!gens) die("calloc");
    char line[160];
    snprintf(line, sizeof line, "S %llu %llu %llu %llu\n", (unsigned long long)seed, (unsigned long long)bs,
             (unsigned long long)blocks, (unsigned long long)first);
    say(line);
    uint64_t pick = seed ^ 0x5DEECE66DULL, writes = 0, flushes = 0;
    while (count == 0 || writes < count) {
        pick += GOLDEN;
        uint64_t block = mix(pick) % blocks;
        uint64_t gen = ++gens[block];
        fill(buffer, (uint32_t)bs, block, gen, seed);
        int fua = fua_every && (writes + 1) % fua_every == 0;
        off_t offset = (off_t)((first + block) * bs);
        ssize_t n = pwrite(fua ? fua_fd : fd, buffer, bs, offset);
        if (n != (ssize_t)bs) {
            if (n >= 0) errno = EIO;
            die("pwrite");
        }
        writes++;
        snprintf(line, sizeof line, "%c %llu %llu\n", fua ? 'D' : 'W', (unsigned long long)block,
                 (unsigned long long)gen);
        say(line);
        if (flush_every && writes % flush_every == 0) {
            if (fdatasync(fd)) die("fdatasync");
            flushes++;
            snprintf(line, sizeof line, "F %llu\n", (unsigned long long)flushes);
            say(line);
        }
    }
    snprintf(line, sizeof line, "E %llu %llu\n", (unsigned long long)writes, (unsigned long long)flushes);
    say(line);
    while (idle) pause();
    return 0;
}

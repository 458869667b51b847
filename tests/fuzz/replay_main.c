/*  replay_main.c — a main() for fuzz targets built without libFuzzer (gcc
    builds): feeds every regular file under each argument (a file or a
    directory, walked recursively, so the regressions/ subdirectory of a
    corpus is replayed too) to LLVMFuzzerTestOneInput once. A crash or
    abort in the target fails the run; so does a corpus that is missing or
    empty, which would otherwise pass without testing anything. */
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t s_files;
static int s_errors;

/*  Reads one file into a buffer of exactly its size (so ASan sees reads
    past the end of the input) and runs the target on it. */
static int s_replay(const char *path, const struct stat *st, int type,
                    struct FTW *ftw)
{
    (void)ftw;
    if (type == FTW_DNR || type == FTW_NS) {
        fprintf(stderr, "replay: cannot read %s\n", path);
        s_errors++;
        return 0;
    }
    if (type != FTW_F || !S_ISREG(st->st_mode))
        return 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "replay: cannot open %s\n", path);
        s_errors++;
        return 0;
    }
    size_t size = (size_t)st->st_size;
    uint8_t *data = malloc(size ? size : 1);
    if (!data || fread(data, 1, size, f) != size) {
        fprintf(stderr, "replay: cannot read %s\n", path);
        s_errors++;
    } else {
        LLVMFuzzerTestOneInput(data, size);
        s_files++;
    }
    free(data);
    fclose(f);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s CORPUS_DIR_OR_FILE...\n", argv[0]);
        return 2;
    }
    for (int i = 1; i < argc; i++) {
        if (nftw(argv[i], s_replay, 16, FTW_PHYS) != 0) {
            perror(argv[i]);
            return 1;
        }
    }
    printf("replay: %zu inputs, %d unreadable\n", s_files, s_errors);
    return (s_errors || s_files == 0) ? 1 : 0;
}

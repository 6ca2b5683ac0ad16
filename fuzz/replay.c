/* Replays a libFuzzer corpus through LLVMFuzzerTestOneInput without
 * libFuzzer, so `make test` (gcc, optionally with ASan/UBSan) checks that
 * every saved input still runs cleanly.
 *
 *   fuzz_X-replay DIR|FILE...
 *
 * A directory is read one level deep (its files, and the files of its
 * subdirectories; dot files are skipped). Exits 1 when an argument is missing, unreadable, or a directory
 * holds no inputs: an empty corpus would make the replay pass vacuously. */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *prog = "replay";

/* Run one file. Returns 1 if it ran, -1 on a read error. The input is copied
 * into a buffer of exactly its size so that ASan sees any over-read. */
static int run_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf = NULL;
	size_t len = 0, cap = 0, n;
	uint8_t *exact;

	if (!f) {
		fprintf(stderr, "%s: %s: %s\n", prog, path, strerror(errno));
		return -1;
	}
	for (;;) {
		if (len == cap) {
			cap = cap ? cap * 2 : 4096;
			buf = realloc(buf, cap);
			if (!buf) {
				fprintf(stderr, "%s: out of memory\n", prog);
				exit(1);
			}
		}
		n = fread(buf + len, 1, cap - len, f);
		if (n == 0)
			break;
		len += n;
	}
	if (ferror(f)) {
		fprintf(stderr, "%s: %s: read error\n", prog, path);
		fclose(f);
		free(buf);
		return -1;
	}
	fclose(f);
	exact = malloc(len ? len : 1);
	if (!exact) {
		fprintf(stderr, "%s: out of memory\n", prog);
		exit(1);
	}
	memcpy(exact, buf, len);
	free(buf);
	LLVMFuzzerTestOneInput(exact, len);
	free(exact);
	return 1;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Run every regular file in dir; recurse into subdirectories while depth > 0.
 * Adds the number of inputs run to *ran; returns -1 on any error. */
static int run_dir(const char *dir, int depth, size_t *ran)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char **names = NULL;
	size_t n = 0, cap = 0;
	int rc = 0;

	if (!d) {
		fprintf(stderr, "%s: %s: %s\n", prog, dir, strerror(errno));
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			names = realloc(names, cap * sizeof(*names));
			if (!names) {
				fprintf(stderr, "%s: out of memory\n", prog);
				exit(1);
			}
		}
		names[n] = malloc(strlen(dir) + strlen(de->d_name) + 2);
		if (!names[n]) {
			fprintf(stderr, "%s: out of memory\n", prog);
			exit(1);
		}
		sprintf(names[n], "%s/%s", dir, de->d_name);
		n++;
	}
	closedir(d);
	/* A fixed order, so that a failure reproduces the same way. */
	if (n)
		qsort(names, n, sizeof(*names), cmp_str);
	for (size_t i = 0; i < n; i++) {
		struct stat st;
		if (stat(names[i], &st) < 0) {
			fprintf(stderr, "%s: %s: %s\n", prog, names[i], strerror(errno));
			rc = -1;
		} else if (S_ISDIR(st.st_mode)) {
			if (depth > 0 && run_dir(names[i], depth - 1, ran) < 0)
				rc = -1;
		} else if (S_ISREG(st.st_mode)) {
			if (run_file(names[i]) < 0)
				rc = -1;
			else
				(*ran)++;
		}
		free(names[i]);
	}
	free(names);
	return rc;
}

int main(int argc, char **argv)
{
	size_t total = 0;
	int failed = 0;

	if (argc > 0 && argv[0]) {
		const char *slash = strrchr(argv[0], '/');
		prog = slash ? slash + 1 : argv[0];
	}
	if (argc < 2) {
		fprintf(stderr, "usage: %s DIR|FILE...\n", prog);
		return 2;
	}
	for (int i = 1; i < argc; i++) {
		struct stat st;
		size_t ran = 0;
		if (stat(argv[i], &st) < 0) {
			fprintf(stderr, "%s: %s: %s\n", prog, argv[i], strerror(errno));
			failed = 1;
			continue;
		}
		if (S_ISDIR(st.st_mode)) {
			if (run_dir(argv[i], 1, &ran) < 0)
				failed = 1;
			if (ran == 0) {
				fprintf(stderr, "%s: %s: no inputs in this directory\n", prog, argv[i]);
				failed = 1;
			}
		} else if (run_file(argv[i]) < 0) {
			failed = 1;
		} else {
			ran = 1;
		}
		total += ran;
	}
	printf("%s: ran %zu input%s\n", prog, total, total == 1 ? "" : "s");
	return failed;
}

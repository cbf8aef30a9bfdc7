/* The test "browser" for the Windows command-line journey under Wine: it
 * appends the URL it is given to the file named by FSN_BROWSER_LOG, where the
 * Linux side of the test reads it and presses "Authorize" (tests only). */
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    const char *log = getenv("FSN_BROWSER_LOG");
    if (argc < 2 || log == NULL) return 2;
    FILE *f = fopen(log, "a");
    if (f == NULL) return 1;
    fprintf(f, "%s\n", argv[1]);
    fclose(f);
    return 0;
}

/* log.c: timestamped one-line log records on stderr (see log.h). */
#include "base/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int level = -1;

void log_set_level(enum log_level l) { level = (int)l; }

static int current(void)
{
    if (level < 0) {
        const char *e = getenv("LOCH_LOG");
        level = LOG_INFO;
        if (e && !strcmp(e, "debug"))
            level = LOG_DEBUG;
        else if (e && !strcmp(e, "warn"))
            level = LOG_WARN;
        else if (e && !strcmp(e, "error"))
            level = LOG_ERROR;
    }
    return level;
}

void log_msg(enum log_level l, const char *fmt, ...)
{
    if ((int)l < current())
        return;
    static const char *names[] = {"DEBUG", "INFO", "WARN", "ERROR"};
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char line[4096];
    int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s ", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000,
                     names[l]);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s\n", line);
}

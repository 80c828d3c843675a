/* fs.h: the local-folder store's entry points, for store.c only.
 * Not a public interface: everything else goes through store.h. */
#ifndef LOCH_STORE_FS_H
#define LOCH_STORE_FS_H

#include "store/store.h"

/* Opens a folder store at dir (an absolute path, no scheme), creating the folder. */
int fs_store_open(const char *dir, struct store **out, struct loch_err *err);
/* The filesystem path of uri inside s (malloc'd), or NULL when uri is outside s. */
char *fs_store_path(struct store *s, const char *uri);
/* The folder behind the store's root (malloc'd). */
char *fs_store_dir(struct store *s);

#endif

/* Small helpers shared by the library's C core and volt-init. */
#include "enforce.h" /* first: it defines _GNU_SOURCE */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>

static const char *const step_names[VE_STEP_COUNT] = {
#define VE_STEP_NAME(id, name) [VE_STEP_##id] = name,
	VE_STEPS(VE_STEP_NAME)
#undef VE_STEP_NAME
};

/* The name of a step of the child sequence, or NULL for a number that is none. */
const char *ve_step_name(int step)
{
	return step >= 0 && step < VE_STEP_COUNT ? step_names[step] : NULL;
}

/* The highest capability number this kernel knows (/proc/sys/kernel/cap_last_cap).
 * Without procfs: CAP_CHECKPOINT_RESTORE (40, 5.9), the last one through 6.18; a
 * capability above it is dropped anyway, since the loop ends at 63 on EINVAL. */
int ve_cap_last(void)
{
	char buf[16];
	int fd = open("/proc/sys/kernel/cap_last_cap", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 40;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 40;
	buf[n] = '\0';
	int v = 0, digits = 0;
	for (char *p = buf; *p >= '0' && *p <= '9'; p++, digits++)
		v = v * 10 + (*p - '0');
	return digits && v < 64 ? v : 40;
}

/* One line of a uid_map/gid_map: "INSIDE OUTSIDE COUNT\n". Its length, or -ENOSPC. */
int ve_format_id_map(char *buf, size_t size, uint32_t inside, uint32_t outside, uint32_t count)
{
	int n = snprintf(buf, size, "%u %u %u\n", inside, outside, count);
	return n < 0 || (size_t)n >= size ? -ENOSPC : n;
}

/* Write all of buf: 0, or -1 with errno (EIO for a write of 0 bytes). */
long ve_write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (n == 0) {
			errno = EIO;
			return -1;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Write a string to an existing file: 0, or -1 with errno. */
long ve_write_file(const char *path, const char *buf)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	long r = ve_write_all(fd, buf, strlen(buf));
	int saved = errno;
	close(fd);
	errno = saved;
	return r;
}

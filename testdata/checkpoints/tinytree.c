/*
 * tinytree is the process recorded in testdata/checkpoints/tinytree: a
 * small static process tree holding one of each kind of descriptor that
 * inspect reports. See record.sh.
 *
 * The parent keeps: a pipe to its child, a unix socketpair, a unix
 * listener bound to an abstract name, a TCP listener and a UDP socket on
 * 127.0.0.1, an established TCP pair over loopback (when argv[1] is
 * "tcp"), an open regular file, and a second thread. The child holds the
 * read end of the pipe. Both then sleep until killed; kill the child
 * first, so that no zombie is left to init.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <signal.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static void die(const char *what)
{
	perror(what);
	exit(1);
}

static void *idle(void *arg)
{
	(void)arg;
	for (;;)
		pause();
	return NULL;
}

static int inet_socket(int type, struct sockaddr_in *addr)
{
	socklen_t len = sizeof(*addr);
	int fd = socket(AF_INET, type, 0);

	if (fd < 0)
		die("socket");
	memset(addr, 0, sizeof(*addr));
	addr->sin_family = AF_INET;
	addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)addr, sizeof(*addr)) < 0)
		die("bind");
	if (getsockname(fd, (struct sockaddr *)addr, &len) < 0)
		die("getsockname");
	return fd;
}

static void unix_listener(void)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	int n;

	if (fd < 0)
		die("socket unix");
	/* An abstract name: nothing on disk to clean up. */
	n = snprintf(sun.sun_path + 1, sizeof(sun.sun_path) - 1,
		     "tinytree-%d", getpid());
	if (bind(fd, (struct sockaddr *)&sun,
		 offsetof(struct sockaddr_un, sun_path) + 1 + n) < 0)
		die("bind unix");
	if (listen(fd, 1) < 0)
		die("listen unix");
}

static void tcp_pair(void)
{
	struct sockaddr_in addr;
	int lfd = inet_socket(SOCK_STREAM, &addr);
	int cfd = socket(AF_INET, SOCK_STREAM, 0);

	if (listen(lfd, 1) < 0)
		die("listen");
	if (connect(cfd, (struct sockaddr *)&addr, sizeof(addr)) < 0)
		die("connect");
	if (accept(lfd, NULL, NULL) < 0)
		die("accept");
	close(lfd);
}

int main(int argc, char **argv)
{
	struct sockaddr_in addr;
	int sp[2], p[2], lfd;
	pthread_t th;
	pid_t child;

	/* Only what this program opens, not what the caller leaked. */
	close_range(3, ~0U, 0);
	/* Its child is reaped by the kernel, even once it is orphaned. */
	signal(SIGCHLD, SIG_IGN);

	if (pipe(p) < 0)
		die("pipe");
	child = fork();
	if (child < 0)
		die("fork");
	if (child == 0) {
		close(p[1]);
		for (;;)
			pause();
	}
	close(p[0]);

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sp) < 0)
		die("socketpair");
	unix_listener();
	lfd = inet_socket(SOCK_STREAM, &addr);
	if (listen(lfd, 4) < 0)
		die("listen");
	inet_socket(SOCK_DGRAM, &addr);
	if (argc > 1 && strcmp(argv[1], "tcp") == 0)
		tcp_pair();
	if (open("/etc/hostname", O_RDONLY) < 0)
		die("open");
	if (pthread_create(&th, NULL, idle, NULL) != 0)
		die("pthread_create");

	printf("ready pid=%d child=%d\n", getpid(), child);
	fflush(stdout);
	for (;;)
		pause();
}

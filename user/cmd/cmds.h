/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
#ifndef __PODTAP_CMDS_H
#define __PODTAP_CMDS_H

int cmd_record(int argc, char **argv);
int cmd_read(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_replay(int argc, char **argv);
int cmd_mock(int argc, char **argv);
int cmd_mirror(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_agent(int argc, char **argv);

#endif

/* One entry point per CLI verb; each parses its own flags and returns the exit code. */
#ifndef MT_CLI_COMMANDS_H
#define MT_CLI_COMMANDS_H

int mt_cmd_info(int argc, char **argv);
int mt_cmd_generate(int argc, char **argv);
int mt_cmd_chat(int argc, char **argv);
int mt_cmd_tokenize(int argc, char **argv);
int mt_cmd_train(int argc, char **argv);
int mt_cmd_export(int argc, char **argv);
int mt_cmd_distill(int argc, char **argv);
int mt_cmd_refine(int argc, char **argv);
int mt_cmd_evolve(int argc, char **argv);
int mt_cmd_eval(int argc, char **argv);
int mt_cmd_status(int argc, char **argv);

#endif

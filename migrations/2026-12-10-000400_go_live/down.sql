DROP TABLE partnership_go_live;

module voltseedgolden

go 1.19

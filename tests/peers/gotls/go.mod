module podtap.test/gotls

go 1.19

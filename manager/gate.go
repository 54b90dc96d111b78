package manager

import (
	"context"

	"google.golang.org/grpc"
)

// Around wraps one unary call of a gated service.
type Around func(ctx context.Context, method string, call func(context.Context) (any, error)) (any, error)

// Gate registers a service on a gRPC server whose implementation may come
// and go (a node is promoted to manager or demoted while its server runs).
// resolve returns the current implementation or an error status to
// answer with (for example "this node is not a manager"). around, if not
// nil, wraps every unary call (with the method's name), for checks and
// error mapping shared by a whole service.
func Gate(s *grpc.Server, desc *grpc.ServiceDesc, resolve func() (any, error), around Around) {
	gated := *desc
	gated.Methods = make([]grpc.MethodDesc, len(desc.Methods))
	for i, md := range desc.Methods {
		h := md.Handler
		gated.Methods[i] = grpc.MethodDesc{
			MethodName: md.MethodName,
			Handler: func(_ any, ctx context.Context, dec func(any) error, in grpc.UnaryServerInterceptor) (any, error) {
				impl, err := resolve()
				if err != nil {
					return nil, err
				}
				if around == nil {
					return h(impl, ctx, dec, in)
				}
				return around(ctx, md.MethodName, func(ctx context.Context) (any, error) {
					return h(impl, ctx, dec, in)
				})
			},
		}
	}
	gated.Streams = make([]grpc.StreamDesc, len(desc.Streams))
	for i, sd := range desc.Streams {
		h := sd.Handler
		gated.Streams[i] = sd
		gated.Streams[i].Handler = func(_ any, stream grpc.ServerStream) error {
			impl, err := resolve()
			if err != nil {
				return err
			}
			return h(impl, stream)
		}
	}
	s.RegisterService(&gated, nil)
}
